package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// loopbackProxy makes the test server believe X-Forwarded-For from the test
// client, so each request can come from an address of its own.
var loopbackProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// from is a header set claiming client address addr (via the trusted proxy).
func from(addr string) http.Header {
	return http.Header{"X-Forwarded-For": {addr}}
}

// basicFrom is HTTP Basic credentials sent from client address addr.
func basicFrom(user, pass, addr string) http.Header {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	r.Header.Set("X-Forwarded-For", addr)
	return r.Header
}

// loginFrom posts a JSON login for user from addr.
func (e *testEnv) loginFrom(user, pass, addr string) (*http.Response, string) {
	e.t.Helper()
	return e.doH(http.MethodPost, "/restapi/v1/chat/"+user+"/login", from(addr),
		jsonBody(map[string]string{"password": pass}), "application/json")
}

func requireRetryAfter(t *testing.T, res *http.Response) {
	t.Helper()
	retry, err := strconv.Atoi(res.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After on 429")
	require.Positive(t, retry)
}

// Issue 22 (Medium): five wrong guesses from anywhere used to lock the right
// password out everywhere. Now the strict budget is per (name, address).
func TestLogin_FailuresFromOneAddressDoNotLockOutAnother(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{api: Config{TrustedProxies: loopbackProxy}})
	user, pass := e.newUser("alice")
	const attacker, owner = "198.51.100.1", "198.51.100.2"
	for i := range DefaultLoginFailuresPerUser {
		res, body := e.loginFrom(user, "guess", attacker)
		require.Equal(t, 40104, requireError(t, res, body, http.StatusUnauthorized).Code, "guess %d", i)
	}
	res, body := e.loginFrom(user, "guess", attacker)
	require.Equal(t, 42900, requireError(t, res, body, http.StatusTooManyRequests).Code)
	requireRetryAfter(t, res)

	res, body = e.loginFrom(user, pass, owner)
	require.Equal(t, http.StatusOK, res.StatusCode, "the owner's right password from elsewhere: %s", body)
	var lr LoginResponse
	require.NoError(t, json.Unmarshal([]byte(body), &lr))
	// Basic on a stream route goes through the same limits.
	presence := "/restapi/v1/chat/" + lr.StreamID + "/presence"
	res, body = e.doH(http.MethodPost, presence, basicFrom(user, pass, owner), nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)

	// The attacker's address stays refused, even with the right password.
	res, body = e.loginFrom(user, pass, attacker)
	require.Equal(t, 42900, requireError(t, res, body, http.StatusTooManyRequests).Code)
	requireRetryAfter(t, res)
	res, body = e.doH(http.MethodPost, presence, basicFrom(user, pass, attacker), nil, "")
	require.Equal(t, 42900, requireError(t, res, body, http.StatusTooManyRequests).Code)
	requireRetryAfter(t, res)
}

func TestAdmin_FailuresFromOneAddressDoNotLockOutAnother(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{api: Config{TrustedProxies: loopbackProxy}})
	const attacker, owner = "198.51.100.1", "198.51.100.2"
	for i := range DefaultLoginFailuresPerUser {
		res, body := e.doH(http.MethodGet, "/restapi/v1/admin/streams", basicFrom(testAdminUser, "guess", attacker), nil, "")
		require.Equal(t, 40104, requireError(t, res, body, http.StatusUnauthorized).Code, "guess %d", i)
	}
	res, body := e.doH(http.MethodGet, "/restapi/v1/admin/streams", basicFrom(testAdminUser, "guess", attacker), nil, "")
	require.Equal(t, 42900, requireError(t, res, body, http.StatusTooManyRequests).Code)
	requireRetryAfter(t, res)

	res, body = e.doH(http.MethodGet, "/restapi/v1/admin/streams", basicFrom(testAdminUser, testAdminPassword, owner), nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, "the admin from elsewhere: %s", body)

	res, body = e.doH(http.MethodGet, "/restapi/v1/admin/streams", basicFrom(testAdminUser, testAdminPassword, attacker), nil, "")
	require.Equal(t, 42900, requireError(t, res, body, http.StatusTooManyRequests).Code)
	requireRetryAfter(t, res)
}

// A name under attack from many addresses may be slowed, but a client that
// has not failed itself always gets in with the right password.
func TestLogin_ManyAddressesNeverLockOutACleanClient(t *testing.T) {
	t.Parallel()
	const perPair = 2
	e := newEnv(t, envOptions{api: Config{TrustedProxies: loopbackProxy, LoginFailuresPerUser: perPair}})
	user, pass := e.newUser("target")
	// Far more failures for the name than any per-name budget holds, each
	// address spending its whole pair budget.
	const addresses = 6 * loginNameFactor
	var wg sync.WaitGroup
	codes := make([][]int, addresses)
	for i := range addresses {
		wg.Go(func() {
			addr := fmt.Sprintf("203.0.113.%d", i+1)
			for range perPair + 1 {
				res, _ := e.doH(http.MethodPost, "/restapi/v1/admin/streams", basicFrom(user, "guess", addr), nil, "")
				codes[i] = append(codes[i], res.StatusCode)
				res, _ = e.loginFrom(user, "guess", addr)
				codes[i] = append(codes[i], res.StatusCode)
			}
		})
	}
	wg.Wait()
	for i, c := range codes {
		require.Contains(t, c, http.StatusTooManyRequests, "address %d ran out of its own budget: %v", i, c)
	}

	res, body := e.loginFrom(user, pass, "192.0.2.77")
	require.Equal(t, http.StatusOK, res.StatusCode, "a never-failed address: %s", body)
	var lr LoginResponse
	require.NoError(t, json.Unmarshal([]byte(body), &lr))
	res, body = e.doH(http.MethodPost, "/restapi/v1/chat/"+lr.StreamID+"/presence", basicFrom(user, pass, "192.0.2.78"), nil, "")
	require.Equal(t, http.StatusNoContent, res.StatusCode, body)
}

// The per-address budget still holds over all names and every route that
// takes a password, the admin routes with any name included.
func TestLogin_PerAddressLimitCoversEveryRoute(t *testing.T) {
	t.Parallel()
	const perAddr = 6
	e := newEnv(t, envOptions{api: Config{TrustedProxies: loopbackProxy, LoginFailuresPerIP: perAddr}})
	bob := e.login(e.newUser("bob"))
	carolUser, carolPass := e.newUser("carol")
	const scanner, clean = "198.51.100.9", "198.51.100.10"
	attempts := []func() (*http.Response, string){
		func() (*http.Response, string) { return e.loginFrom(carolUser, "guess", scanner) },
		func() (*http.Response, string) {
			return e.doH(http.MethodPost, "/restapi/v1/chat/"+bob.StreamID+"/presence", basicFrom(bob.user, "guess", scanner), nil, "")
		},
		func() (*http.Response, string) {
			return e.doH(http.MethodGet, "/restapi/v1/admin/streams", basicFrom("root", "guess", scanner), nil, "")
		},
		func() (*http.Response, string) {
			return e.doH(http.MethodGet, "/restapi/v1/admin/streams", basicFrom("administrator", "guess", scanner), nil, "")
		},
		func() (*http.Response, string) {
			return e.doH(http.MethodGet, "/restapi/v1/admin/streams", basicFrom(bob.user, bob.pass, scanner), nil, "")
		},
		func() (*http.Response, string) {
			return e.doH(http.MethodGet, "/restapi/v1/admin/streams", basicFrom(testAdminUser, "guess", scanner), nil, "")
		},
	}
	require.Len(t, attempts, perAddr)
	for i, try := range attempts {
		res, body := try()
		require.Equal(t, 40104, requireError(t, res, body, http.StatusUnauthorized).Code, "attempt %d", i)
	}
	// The address is spent: every name, every route, even right passwords.
	res, body := e.loginFrom(carolUser, carolPass, scanner)
	require.Equal(t, 42900, requireError(t, res, body, http.StatusTooManyRequests).Code)
	requireRetryAfter(t, res)
	res, body = e.doH(http.MethodGet, "/restapi/v1/admin/streams", basicFrom(testAdminUser, testAdminPassword, scanner), nil, "")
	require.Equal(t, 42900, requireError(t, res, body, http.StatusTooManyRequests).Code)
	res, body = e.doH(http.MethodPost, "/restapi/v1/chat/"+bob.StreamID+"/presence", basicFrom(bob.user, bob.pass, scanner), nil, "")
	require.Equal(t, 42900, requireError(t, res, body, http.StatusTooManyRequests).Code)

	// Another address is untouched.
	res, body = e.loginFrom(carolUser, carolPass, clean)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	res, body = e.doH(http.MethodGet, "/restapi/v1/admin/streams", basicFrom(testAdminUser, testAdminPassword, clean), nil, "")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
}

// Issue 22 (Medium): the admin name was an oracle (its name got 401/429,
// any other 403). Every Basic failure on an admin route now answers alike.
func TestAdmin_WrongNameLooksLikeWrongPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{api: Config{TrustedProxies: loopbackProxy}})
	alice := e.login(e.newUser("alice"))
	// Each sequence from an address of its own, so they spend alike.
	sequences := []http.Header{
		basicFrom(testAdminUser, "guess", "198.51.100.21"), // the admin's name, wrong password
		basicFrom("root", "guess", "198.51.100.22"),        // a name that is not the admin's
		basicFrom(alice.user, alice.pass, "198.51.100.23"), // a real user's right password
		basicFrom("no such user!", "x", "198.51.100.24"),   // not even a valid localpart
	}
	type answer struct {
		status int
		header http.Header
		body   map[string]any
	}
	answers := make([][]answer, len(sequences))
	for i, h := range sequences {
		for range DefaultLoginFailuresPerUser + 1 {
			res, body := e.doH(http.MethodGet, "/restapi/v1/admin/streams", h, nil, "")
			hdr := res.Header.Clone()
			hdr.Del("Date")
			hdr.Del("X-Request-Id")
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(body), &m), body)
			require.NotEmpty(t, m["request_id"])
			delete(m, "request_id")
			answers[i] = append(answers[i], answer{res.StatusCode, hdr, m})
		}
	}
	last := len(answers[0]) - 1
	require.Equal(t, http.StatusUnauthorized, answers[0][0].status)
	require.Equal(t, http.StatusTooManyRequests, answers[0][last].status)
	for i := 1; i < len(answers); i++ {
		require.Equal(t, answers[0], answers[i], "sequence %d differs from the admin name's", i)
	}
	for _, a := range answers[0] {
		require.NotContains(t, strings.ToLower(fmt.Sprint(a.body["error"])), "admin")
	}
}

func TestLimiterSet_StaysBounded(t *testing.T) {
	t.Parallel()
	l := newLimiterSet(0.01, 5)
	for i := range 100_000 {
		l.Take("key-" + strconv.Itoa(i))
	}
	require.LessOrEqual(t, l.m.Len(), limiterSetSize)
	// The newest keys are the ones kept: key-99999 spent one token in the
	// flood and has four left of its five.
	for range 4 {
		ok, _ := l.Take("key-99999")
		require.True(t, ok)
	}
	ok, _ := l.Take("key-99999")
	require.False(t, ok, "the bucket of a recent key survived the flood")
}
