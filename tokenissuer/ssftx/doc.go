// Package ssftx is the issuer's persistent SSF poll queue (RFC 8936):
// StoreQueue, an ssf.Queue whose events are the store's cluster-wide
// feed (store.FeedLog) and whose streams are store records
// (store.NSSSFStream), so every node of a cluster serves every stream
// and a restart loses nothing.
//
// The semantics are ssf.MemQueue's (acknowledgement based delivery,
// RFC 8936 section 2.4; SETs signed per stream at poll time with a jti
// unique per stream and event). What differs:
//
//   - An event is retained until its RelevantUntil plus
//     ssf.DefaultLeeway: gateways accept a token that long past exp.
//   - An entry that cannot be decoded is skipped (reported once through
//     Logger and OnBadEntry), by the in-process view and every stream.
//   - One poll per stream in flight per queue: a newer one ends the
//     older's wait, which answers what it has (often nothing). Signed
//     SETs are cached (SETCache, SETCacheTTL), so polling again without
//     acknowledging signs nothing again.
//   - Acknowledgements are bounded: a stream is delivered events only
//     within MaxAcked sequence numbers of its cursor, so the
//     acknowledged set above the cursor never exceeds MaxAcked.
//   - A long poll (RFC 8936 section 2.1) wakes at once on a Publish in
//     this process and notices other nodes' appends by re-reading the
//     feed's head every HeadPoll while some poll waits.
//   - There is no MaxRetained: the feed is bounded by expiry (Purge).
package ssftx
