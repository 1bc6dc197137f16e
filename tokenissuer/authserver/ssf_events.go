package authserver

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// System Log events of the stream API. Okta documents no event types
// for its SSF Transmitter API; these follow its naming.
const (
	EventSSFStreamCreate = "security.events.provider.stream.create"
	EventSSFStreamUpdate = "security.events.provider.stream.update"
	EventSSFStreamDelete = "security.events.provider.stream.delete"
)

func init() {
	mfaKinds[EventSSFStreamCreate] = []eventKind{{EventSSFStreamCreate, EventSSFStreamCreate, "Create SSF stream", false}}
	mfaKinds[EventSSFStreamUpdate] = []eventKind{{EventSSFStreamUpdate, EventSSFStreamUpdate, "Update SSF stream", false}}
	mfaKinds[EventSSFStreamDelete] = []eventKind{{EventSSFStreamDelete, EventSSFStreamDelete, "Delete SSF stream", false}}
}

// logStream records a stream API change with the client as actor and
// the stream as target.
func (i *Issuer) logStream(r *http.Request, event string, st *streamRecord) {
	d := decision{server: i.org, req: r, clientID: st.ClientID}
	if c := i.log.Check(zap.InfoLevel, event); c != nil {
		c.Write(zap.String("outcome", "SUCCESS"), zap.String("client_id", st.ClientID), zap.String("stream_id", st.ID))
	}
	if i.sink == nil {
		return
	}
	txn := transactionID(r)
	for _, k := range kindsOf(event, &d, false) {
		ev := i.baseEvent(&d, nil, txn)
		ev.UUID, ev.EventType, ev.DisplayMessage = newUUID(), k.name(nil), k.message
		ev.Target = append(ev.Target, store.LogTarget{ID: st.ID, Type: "SsfStream", AlternateID: st.ID, DisplayName: st.ID})
		ev.DebugContext.DebugData["streamId"] = st.ID
		i.sink.add(ev)
	}
}

// clientByID is a configured client, or nil.
func (i *Issuer) clientByID(id string) *clientauth.Client {
	if i.auth == nil {
		return nil
	}
	c, _ := i.auth.Client(id)
	return c
}
