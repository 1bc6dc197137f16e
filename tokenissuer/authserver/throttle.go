package authserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Password attempts (the sign-in page and the password grant share
// them): each one is counted before its password is checked, by an
// atomic store counter shared by every node, so parallel guesses cannot
// all read the same count. Beyond the limits the login (or the
// address) is locked for the rest of the window; a success clears the
// login's count. The answer never says which.
const (
	throttleWindow  = 15 * time.Minute
	maxUserFailures = 10
	maxAddrFailures = 50
	slowAfter       = 3
	slowStep        = 250 * time.Millisecond // per failure beyond slowAfter
	maxDelay        = 2 * time.Second
	// maxInFlightPerLogin bounds the checks of one login running at once
	// in this process: a burst for one login waits on nobody else's
	// hash work and is answered "try again".
	maxInFlightPerLogin = 2
	// maxTxnAttempts is how many passwords one pending sign-in takes
	// before it expires.
	maxTxnAttempts = 5
)

// EventAccountLock is Okta's System Log event for a user locked out
// after too many failed sign-ins ("Max sign in attempts exceeded").
const EventAccountLock = "user.account.lock"

var (
	// errLocked: the login or the address has used up its attempts.
	errLocked = errors.New("too many failed sign-ins")
	// errLoginBusy: too many checks of this login are running now.
	errLoginBusy = errors.New("too many sign-ins of this login in progress")
)

// attempt is one admitted password attempt; end it with done.
type attempt struct {
	i           *Issuer
	login, addr string
	user, byIP  int64 // the counts including this attempt
	release     func()
}

// admitAttempt counts a password attempt for login from addr before the
// password is checked. It returns errLocked (counted, not to be checked)
// when either count is past its limit, errLoginBusy when the login has
// too many checks in flight here, or the store's error.
func (i *Issuer) admitAttempt(ctx context.Context, login, addr string) (*attempt, error) {
	release, ok := i.inflight.acquire(login)
	if !ok {
		return nil, errLoginBusy
	}
	until := i.now().Add(throttleWindow)
	u, err := i.store.Incr(ctx, store.NSAttempts, "user:"+login, 1, until)
	if err != nil {
		release()
		return nil, err
	}
	a, err := i.store.Incr(ctx, store.NSAttempts, "addr:"+addr, 1, until)
	if err != nil {
		release()
		return nil, err
	}
	at := &attempt{i: i, login: login, addr: addr, user: u, byIP: a, release: release}
	if u > maxUserFailures || a > maxAddrFailures {
		release()
		return at, errLocked
	}
	return at, nil
}

// errNotLocked aborts unlockLogin's update: nothing to unlock.
var errNotLocked = errors.New("login is not locked out")

// unlockLogin ends login's lockout (an admin's "Unlock a User"): its
// count is deleted, atomically, if it has reached maxUserFailures (the
// next attempt would be refused), so the next password is checked. It
// reports false, writing nothing, when the login is not locked out.
// The addresses' counts stay: an unlock is of a user.
func (i *Issuer) unlockLogin(ctx context.Context, login string) (bool, error) {
	_, err := i.store.UpdateRecord(ctx, store.NSAttempts, "user:"+login, func(old []byte) ([]byte, error) {
		n, err := strconv.ParseInt(string(old), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("the attempts of a login are not a count: %w", err)
		}
		if n < maxUserFailures {
			return nil, errNotLocked
		}
		return nil, nil
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, errNotLocked) {
		return false, nil
	}
	return err == nil, err
}

// succeeded clears the login's count and takes this attempt back from
// the address's, so the users behind one address (a NAT, a proxy) are
// not locked out by signing in.
func (a *attempt) succeeded(ctx context.Context) {
	defer a.release()
	_, _ = a.i.store.UpdateRecord(ctx, store.NSAttempts, "user:"+a.login, func([]byte) ([]byte, error) { return nil, nil })
	_, _ = a.i.store.Incr(ctx, store.NSAttempts, "addr:"+a.addr, -1, a.i.now().Add(throttleWindow))
}

// clearLogin ends the count of a login whose sign-in completed without
// passing through an attempt's success (acr ...:ifpossible, no factor).
func (i *Issuer) clearLogin(ctx context.Context, login string) {
	_, _ = i.store.UpdateRecord(ctx, store.NSAttempts, "user:"+login, func([]byte) ([]byte, error) { return nil, nil })
}

// unchecked takes the attempt back: its password was never checked
// (the hash gate was full, the store failed).
func (a *attempt) unchecked(ctx context.Context) {
	defer a.release()
	until := a.i.now().Add(throttleWindow)
	_, _ = a.i.store.Incr(ctx, store.NSAttempts, "user:"+a.login, -1, until)
	_, _ = a.i.store.Incr(ctx, store.NSAttempts, "addr:"+a.addr, -1, until)
}

// failed ends a wrong attempt: it logs the lockout the attempt caused,
// if any, then slows the answer down after the first few failures
// (the login's checks in flight stay taken meanwhile).
func (a *attempt) failed(ctx context.Context, d decision) {
	defer a.release()
	if a.user == maxUserFailures {
		a.i.logLockout(ctx, d, a.login)
	}
	if wait := slowDown(max(a.user, a.byIP), a.i.slowStep); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

// slowDown is how long the answer to a failed attempt waits, n being
// the higher of the login's and the address's counts: nothing for the
// first slowAfter failures, then step more per failure, at most
// maxDelay.
func slowDown(n int64, step time.Duration) time.Duration {
	return min(time.Duration(max(n-slowAfter, 0))*step, maxDelay)
}

// logLockout writes Okta's lockout event for a login that names a user
// (an unknown login is locked too, silently: there is no account), with
// the login and the address of the attempt that locked it (d).
func (i *Issuer) logLockout(ctx context.Context, d decision, login string) {
	if i.dir == nil {
		return
	}
	u, err := i.dir.UserByLogin(ctx, login)
	if err != nil {
		return
	}
	d.userID, d.login = u.ID, login
	if c := d.server.log.Check(zap.WarnLevel, EventAccountLock); c != nil {
		c.Write(append(d.fields(3), zap.String("outcome", "SUCCESS"), zap.String("reason", "Max sign in attempts exceeded"),
			zap.Duration("locked_for", throttleWindow))...)
	}
	d.outcomeReason = "Max sign in attempts exceeded"
	i.logEvents(EventAccountLock, &d, nil)
}

// inFlight counts the password checks of each login running in this
// process. Entries leave the map when their count drops to zero, so it
// holds at most one entry per request in progress.
type inFlight struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *inFlight) acquire(login string) (release func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	if f.n[login] >= maxInFlightPerLogin {
		return nil, false
	}
	f.n[login]++
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.n[login]--; f.n[login] <= 0 {
				delete(f.n, login)
			}
		})
	}, true
}

var (
	// errDirectory wraps a directory's own failure (not a wrong password).
	errDirectory = errors.New("directory")
	// errInactive: the right password of a user who may not sign in; it
	// is answered as bad credentials.
	errInactive = fmt.Errorf("user is not active: %w", directory.ErrBadCredentials)
)

// passwordAttempt is one counted password check of login from addr,
// shared by the sign-in page and the password grant. Its errors:
// errLocked, errLoginBusy and hashgate.ErrBusy (not checked),
// directory.ErrBadCredentials
// (a wrong password or an unknown login), errInactive (with the user),
// errDirectory, or the store's error.
//
// complete says whether the right password of a user ends the sign-in:
// only then is the login's count cleared. While a second factor is
// still to come the attempt is taken back but the count kept, so that
// signing in with a known password again and again cannot clear the
// count of wrong codes (the factor's success clears it, mfa_pages.go).
func (i *Issuer) passwordAttempt(ctx context.Context, login, password, addr string, d decision, complete func(*directory.User) bool) (*directory.User, error) {
	at, err := i.admitAttempt(ctx, login, addr)
	if err != nil {
		return nil, err
	}
	var user *directory.User
	err = directory.ErrBadCredentials
	if i.dir != nil && login != "" && password != "" {
		user, err = directory.CheckPassword(ctx, i.dir, i.gate, login, password)
	}
	switch {
	case err == nil && user.Active():
		if complete(user) {
			at.succeeded(ctx)
		} else {
			// Taken back from both counts, the login's kept: the factor's
			// success clears it (mfa_pages.go).
			at.unchecked(ctx)
		}
		return user, nil
	case err == nil:
		at.failed(ctx, d)
		return user, errInactive
	case errors.Is(err, directory.ErrBadCredentials):
		at.failed(ctx, d)
		return nil, directory.ErrBadCredentials
	case errors.Is(err, hashgate.ErrBusy), ctx.Err() != nil:
		at.unchecked(ctx)
		return nil, hashgate.ErrBusy
	default:
		at.unchecked(ctx)
		return nil, fmt.Errorf("%w: %w", errDirectory, err)
	}
}
