// Package fastpath runs workgroup expert queues (the ancestor's "Fastpath",
// XEP-0142 in spirit) inside the gateway, so they work on any XMPP server
// with MUC: users ask a workgroup, the question waits in a FIFO queue, and
// is offered round-robin to the workgroup's available agents with free
// capacity; an accepted offer becomes a members-only MUC room (created by
// the caller, see RoomReady).
//
// The package knows no XMPP and no HTTP. Streams are opaque ids: events are
// handed to Hooks.Publish with the stream id they are for, and agent
// availability comes from Hooks.Availability. Every method is safe for
// concurrent use; time comes from Options.Clock, so tests drive timeouts by
// calling Tick with a fake clock.
package fastpath

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Defaults for Workgroup and Options fields left zero.
const (
	DefaultMaxChats     = 2
	DefaultOfferTimeout = 30 * time.Second
	DefaultTick         = 500 * time.Millisecond
	// DefaultRetryAfter is how long an agent who rejected (or let time out)
	// an offer is skipped for that same request.
	DefaultRetryAfter = time.Minute
	// DefaultRetainEnded keeps finished tickets (status, transcript) this long.
	DefaultRetainEnded = 24 * time.Hour
	// defaultEstimate is the assumed wait per queue position before any
	// request has been accepted.
	defaultEstimate = 30 * time.Second
	// RoutingRoundRobin is the only routing: the next available member
	// with capacity after the one offered last, in member order.
	RoutingRoundRobin = "round-robin"
)

// Errors. Package api maps each to one HTTP status.
var (
	ErrInvalid           = errors.New("fastpath: invalid request")
	ErrWorkgroupNotFound = errors.New("fastpath: no such workgroup")
	ErrWorkgroupExists   = errors.New("fastpath: workgroup already exists")
	ErrWorkgroupClosed   = errors.New("fastpath: workgroup is closed")
	ErrNoMembers         = errors.New("fastpath: workgroup has no members")
	ErrNotMember         = errors.New("fastpath: not a member of the workgroup")
	ErrNotOnline         = errors.New("fastpath: not online in the workgroup")
	ErrTicketNotFound    = errors.New("fastpath: no such ticket")
	ErrOfferNotFound     = errors.New("fastpath: no such offer")
	ErrTooManyTickets    = errors.New("fastpath: too many open tickets for this user")
)

// DefaultMaxTicketsPerUser bounds one user's open (queued or chatting)
// tickets: each holds memory and costs every agent queue updates.
const DefaultMaxTicketsPerUser = 5

// Workgroup is a workgroup's configuration.
type Workgroup struct {
	Name        string `json:"name" example:"diabetes"`
	Description string `json:"description,omitempty"`
	// Members are the agents' bare JIDs, in routing order.
	Members []string `json:"members" example:"expert@localhost"`
	// MaxChats is the most chats (plus pending offers) per agent; 0 = 2.
	MaxChats int `json:"max_chats,omitempty" example:"2"`
	// OfferTimeout is how long an agent has to answer an offer, in seconds; 0 = 30.
	OfferTimeout int `json:"offer_timeout,omitempty" example:"30"`
	// Routing is "round-robin" (the only one; empty means it).
	Routing string `json:"routing,omitempty" example:"round-robin"`
	// Open workgroups take asks; a closed one answers them 409 "workgroup
	// is closed". Default true: a workgroup is open unless "open": false is
	// given.
	Open bool `json:"open" default:"true" example:"true"`
}

// UnmarshalJSONFrom decodes a workgroup with Open true unless the JSON
// says otherwise (a Go zero value would close every workgroup created
// without the field). It is go-json-experiment/json's method, so the
// caller's options hold inside: the API's strict decode (exact names,
// unknown fields refused) reaches these fields too.
func (w *Workgroup) UnmarshalJSONFrom(d *jsontext.Decoder) error {
	if d.PeekKind() == 'n' {
		_, err := d.ReadToken() // null leaves the value alone
		return err
	}
	type plain Workgroup // the same fields without this method
	p := plain{Open: true}
	if err := jsonv2.UnmarshalDecode(d, &p); err != nil {
		return err
	}
	*w = Workgroup(p)
	return nil
}

var workgroupName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// normalize validates w and fills defaults.
func (w *Workgroup) normalize() error {
	if !workgroupName.MatchString(w.Name) || w.Name == "queues" {
		return fmt.Errorf("%w: workgroup name must be 1-64 of a-z 0-9 . _ - (and not \"queues\")", ErrInvalid)
	}
	if w.MaxChats == 0 {
		w.MaxChats = DefaultMaxChats
	}
	if w.OfferTimeout == 0 {
		w.OfferTimeout = int(DefaultOfferTimeout / time.Second)
	}
	if w.MaxChats < 0 || w.MaxChats > 1000 || w.OfferTimeout < 0 || w.OfferTimeout > 3600 {
		return fmt.Errorf("%w: max_chats must be 1-1000 and offer_timeout 1-3600 seconds", ErrInvalid)
	}
	if w.Routing == "" {
		w.Routing = RoutingRoundRobin
	}
	if w.Routing != RoutingRoundRobin {
		return fmt.Errorf("%w: routing must be %q", ErrInvalid, RoutingRoundRobin)
	}
	if len(w.Description) > 1024 {
		return fmt.Errorf("%w: description too long", ErrInvalid)
	}
	seen := map[string]bool{}
	members := make([]string, 0, len(w.Members))
	for _, m := range w.Members {
		if m == "" || len(m) > 3071 || seen[m] {
			return fmt.Errorf("%w: members must be distinct, non-empty JIDs", ErrInvalid)
		}
		seen[m] = true
		members = append(members, m)
	}
	w.Members = members
	return nil
}

func (w Workgroup) clone() Workgroup {
	w.Members = slices.Clone(w.Members)
	return w
}

// Availability is what the gateway knows of a stream.
type Availability int

const (
	// Gone: the stream no longer exists.
	Gone Availability = iota
	// Away: the stream exists but is not to be offered anything (presence
	// dnd, xa or unavailable, or reconnecting).
	Away
	// Available: online and accepting offers.
	Available
)

// Hooks connect the engine to the gateway. Both are called with the
// engine's lock held, so they must not call back into the Service.
type Hooks interface {
	// Publish sends one event (a JSON-encodable value) to a stream.
	Publish(stream string, event any)
	// Availability reports a stream's state.
	Availability(stream string) Availability
	// InRoom reports whether a stream is in a room (JID), so a chat can end
	// when both sides have left it.
	InRoom(stream, room string) bool
}

// Options configure a Service.
type Options struct {
	Clock       func() time.Time // default time.Now
	NewID       func() string    // default 128 random bits, hex
	Tick        time.Duration    // timer goroutine period; default DefaultTick
	RetryAfter  time.Duration    // default DefaultRetryAfter
	RetainEnded time.Duration    // default DefaultRetainEnded
	// MaxTicketsPerUser bounds one user's open tickets; default
	// DefaultMaxTicketsPerUser.
	MaxTicketsPerUser int
}

// Ticket states.
const (
	StateQueued    = "queued"    // waiting; maybe offered to an agent
	StateAccepting = "accepting" // an agent accepted; the room is being made
	StateChatting  = "chatting"  // the room exists and the user is invited
	StateEnded     = "ended"     // left the queue or the conversation
)

// AskRequest is a user's request for an expert.
type AskRequest struct {
	Workgroup string
	User      string // the asker's bare JID (the ticket owner)
	Stream    string // the asker's stream: where their events go
	Question  string
	Email     string
	UserID    string
	Nickname  string
	Metadata  map[string]string
}

// TicketInfo is a ticket as shown to its owner, an admin or the agent.
type TicketInfo struct {
	Ticket    string `json:"ticket"`
	Workgroup string `json:"workgroup"`
	State     string `json:"state" example:"queued"`
	// Position is the 1-based place in the queue (0 once out of it).
	Position int `json:"position"`
	// EstimatedWait is in seconds.
	EstimatedWait int       `json:"estimated_wait"`
	Question      string    `json:"question"`
	Joined        time.Time `json:"joined"`
	Room          string    `json:"room,omitempty"`
	Agent         string    `json:"agent,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	// User and the streams are for the gateway, not the JSON.
	User        string `json:"-"`
	Stream      string `json:"-"`
	AgentStream string `json:"-"`
	// RoomName is the unguessable room localpart to create on accept.
	RoomName string `json:"-"`
}

// QueueUser is one waiting request in a queue listing.
type QueueUser struct {
	Ticket        string    `json:"ticket"`
	UserID        string    `json:"userID"`
	QueuePosition int       `json:"queuePosition"`
	EstimatedTime int       `json:"estimatedTime"`
	JoinDate      time.Time `json:"joinDate"`
}

// QueueInfo is one workgroup's queue as its agents see it.
type QueueInfo struct {
	Name string `json:"name"`
	// Status is open (agents available), active (open, no agent free) or closed.
	Status          string      `json:"status" example:"open"`
	AverageWaitTime int         `json:"averageWaitTime"`
	OldestEntry     *time.Time  `json:"oldestEntry,omitempty"`
	Users           []QueueUser `json:"users"`
	CurrentChats    int         `json:"currentChats"`
	MaxChats        int         `json:"maxChats"`
}

// Event payloads (the ancestor's shapes, §3.3 of the reference).
type (
	// UpdateQueue tells a queued user their place.
	UpdateQueue struct {
		Type          string `json:"type"` // update-queue
		Workgroup     string `json:"workgroup"`
		Ticket        string `json:"ticket"`
		Position      int    `json:"position"`
		RemainingTime int    `json:"remaining_time"`
	}
	// DepartQueue tells a user their request left the queue.
	DepartQueue struct {
		Type      string `json:"type"` // depart-queue
		Workgroup string `json:"workgroup"`
		Ticket    string `json:"ticket"`
		Reason    string `json:"reason"`
	}
	// NotifyQueue tells agents the state of a queue.
	NotifyQueue struct {
		Type            string     `json:"type"` // notify-queue
		Workgroup       string     `json:"workgroup"`
		UserCount       int        `json:"userCount"`
		AverageWaitTime int        `json:"averageWaitTime"`
		OldestEntry     *time.Time `json:"oldestEntry"`
		Status          string     `json:"status"`
	}
	// OfferReceived offers a request to an agent.
	OfferReceived struct {
		Type      string            `json:"type"` // offerReceived
		Workgroup string            `json:"workgroup"`
		ID        string            `json:"id"`
		From      string            `json:"from"`
		Timeout   int               `json:"timeout"`
		MetaData  map[string]string `json:"metaData"`
	}
	// OfferRevoked withdraws an offer.
	OfferRevoked struct {
		Type      string `json:"type"` // offerRevoked
		Workgroup string `json:"workgroup"`
		ID        string `json:"id"`
		From      string `json:"from"`
		Reason    string `json:"reason"`
	}
	// InvitationReceived tells the accepting agent about the room.
	InvitationReceived struct {
		Type      string `json:"type"` // invitationReceived
		Room      string `json:"room"`
		Inviter   string `json:"inviter"`
		From      string `json:"from"`
		To        string `json:"to"`
		Reason    string `json:"reason"`
		Workgroup string `json:"workgroup"`
		Ticket    string `json:"ticket"`
	}
	// Offer tells the user the room to join.
	Offer struct {
		Type      string `json:"type"` // offer
		MucRoom   string `json:"mucRoom"`
		From      string `json:"from"`
		To        string `json:"to"`
		Agent     string `json:"agent"`
		Workgroup string `json:"workgroup"`
		Ticket    string `json:"ticket"`
	}
)

type ticket struct {
	req      AskRequest
	id       string
	state    string
	joined   time.Time
	offer    *offer
	excluded map[string]time.Time // agent → skipped until
	agent    string
	agentSt  string
	roomName string
	room     string
	reason   string
	ended    time.Time
	lastPos  int
	lastEst  int
	// userSeen: the user has been in the chat room (the chat ends once both
	// have left it).
	userSeen bool
}

type offer struct {
	id       string
	t        *ticket
	agent    string
	stream   string
	deadline time.Time
}

type agent struct {
	user   string
	stream string
	groups map[string]bool
}

type group struct {
	cfg      Workgroup
	queue    []*ticket // FIFO of queued tickets
	rr       int       // index in cfg.Members of the agent offered last
	waits    []time.Duration
	notified map[string]NotifyQueue // agent → last notify-queue sent
}

// Service is the queue engine plus the timer goroutine (Start/Close).
type Service struct {
	opts Options

	mu      sync.Mutex
	hooks   Hooks
	groups  map[string]*group
	tickets map[string]*ticket
	offers  map[string]*offer
	agents  map[string]*agent

	// version counts state changes (see Version); it is bumped under mu
	// wherever state is mutated, so the cluster can persist only on change.
	version uint64

	startOnce, closeOnce sync.Once
	stop, done           chan struct{}
}

// New returns a Service with the given workgroups. The timer goroutine is
// not running until Start; tests may call Tick instead.
func New(opts Options, workgroups []Workgroup) (*Service, error) {
	s := newService(opts)
	for _, w := range workgroups {
		if _, err := s.CreateWorkgroup(w); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// newService is an empty Service with opts' defaults filled (New and
// Restore).
func newService(opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.NewID == nil {
		opts.NewID = randomID
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	if opts.MaxTicketsPerUser <= 0 {
		opts.MaxTicketsPerUser = DefaultMaxTicketsPerUser
	}
	if opts.RetainEnded <= 0 {
		opts.RetainEnded = DefaultRetainEnded
	}
	return &Service{opts: opts, groups: map[string]*group{}, tickets: map[string]*ticket{},
		offers: map[string]*offer{}, agents: map[string]*agent{}, stop: make(chan struct{}), done: make(chan struct{})}
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Bind sets the hooks (the gateway side). Until then events are dropped
// and every stream counts as gone.
func (s *Service) Bind(h Hooks) {
	s.mu.Lock()
	s.hooks = h
	s.mu.Unlock()
}

// Start runs the timer goroutine (offer timeouts, presence changes,
// disconnects) until Close.
func (s *Service) Start() {
	s.startOnce.Do(func() {
		go func() {
			defer close(s.done)
			t := time.NewTicker(s.opts.Tick)
			defer t.Stop()
			for {
				select {
				case <-s.stop:
					return
				case <-t.C:
					s.Tick()
				}
			}
		}()
	})
}

// Close stops the timer goroutine and waits for it. Idempotent.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		started := true
		s.startOnce.Do(func() { started = false })
		if started {
			<-s.done
		}
	})
}

// --- hooks, under s.mu ---

func (s *Service) publish(stream string, ev any) {
	if s.hooks != nil && stream != "" {
		s.hooks.Publish(stream, ev)
	}
}

func (s *Service) inRoom(stream, room string) bool {
	return s.hooks != nil && stream != "" && room != "" && s.hooks.InRoom(stream, room)
}

func (s *Service) availability(stream string) Availability {
	if s.hooks == nil {
		return Gone
	}
	return s.hooks.Availability(stream)
}

// --- workgroup administration ---

// Workgroups lists the workgroups by name.
func (s *Service) Workgroups() []Workgroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Workgroup, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g.cfg.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Workgroup returns one workgroup.
func (s *Service) Workgroup(name string) (Workgroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[name]
	if !ok {
		return Workgroup{}, ErrWorkgroupNotFound
	}
	return g.cfg.clone(), nil
}

// CreateWorkgroup adds a workgroup; ErrWorkgroupExists if the name is taken.
func (s *Service) CreateWorkgroup(w Workgroup) (Workgroup, error) {
	if err := w.normalize(); err != nil {
		return Workgroup{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[w.Name]; ok {
		return Workgroup{}, ErrWorkgroupExists
	}
	s.groups[w.Name] = &group{cfg: w, rr: -1, notified: map[string]NotifyQueue{}}
	s.touch()
	return w.clone(), nil
}

// UpdateWorkgroup replaces a workgroup's configuration (the name stays).
// Closing it departs every queued request; removed members go offline in
// it and lose their offers.
func (s *Service) UpdateWorkgroup(name string, w Workgroup) (Workgroup, error) {
	w.Name = name
	if err := w.normalize(); err != nil {
		return Workgroup{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[name]
	if !ok {
		return Workgroup{}, ErrWorkgroupNotFound
	}
	if !slices.Equal(g.cfg.Members, w.Members) {
		g.rr = -1
	}
	g.cfg = w
	s.touch()
	for user, a := range s.agents {
		if a.groups[name] && !slices.Contains(w.Members, user) {
			s.agentLeaves(a, name, "agent removed from the workgroup")
		}
	}
	if !w.Open {
		for _, t := range slices.Clone(g.queue) {
			s.depart(t, "workgroup closed", true)
		}
	}
	s.settle()
	return w.clone(), nil
}

// DeleteWorkgroup removes a workgroup: queued requests depart, agents go
// offline in it. Running chats are left alone.
func (s *Service) DeleteWorkgroup(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[name]
	if !ok {
		return ErrWorkgroupNotFound
	}
	for _, t := range slices.Clone(g.queue) {
		s.depart(t, "workgroup deleted", true)
	}
	for _, a := range s.agents {
		if a.groups[name] {
			s.agentLeaves(a, name, "workgroup deleted")
		}
	}
	delete(s.groups, name)
	s.touch()
	s.settle()
	return nil
}

// --- agents ---

// AgentOnline makes user (through stream) an available agent of a
// workgroup they are a member of. Going online again from another stream
// moves the agent (and all their workgroups) to that stream.
func (s *Service) AgentOnline(user, stream, workgroup string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[workgroup]
	if !ok {
		return ErrWorkgroupNotFound
	}
	if !slices.Contains(g.cfg.Members, user) {
		return ErrNotMember
	}
	a := s.agents[user]
	if a == nil {
		a = &agent{user: user, groups: map[string]bool{}}
		s.agents[user] = a
	}
	if a.stream != stream {
		// Offers went to the old stream: withdraw them there.
		for _, o := range s.offersOf(user) {
			s.revoke(o, "agent moved to another stream", false)
		}
		a.stream = stream
	}
	a.groups[workgroup] = true
	delete(g.notified, user) // send the queue state afresh
	s.touch()
	s.settle()
	return nil
}

// AgentOffline takes user offline in a workgroup; their pending offers
// there are revoked and routed on.
func (s *Service) AgentOffline(user, workgroup string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[workgroup]; !ok {
		return ErrWorkgroupNotFound
	}
	a := s.agents[user]
	if a == nil || !a.groups[workgroup] {
		return ErrNotOnline
	}
	s.agentLeaves(a, workgroup, "agent went offline")
	s.settle()
	return nil
}

// agentLeaves removes a from one workgroup, revoking its offers there.
func (s *Service) agentLeaves(a *agent, workgroup, reason string) {
	s.touch()
	for _, o := range s.offersOf(a.user) {
		if o.t.req.Workgroup == workgroup {
			s.revoke(o, reason, true)
		}
	}
	delete(a.groups, workgroup)
	if g := s.groups[workgroup]; g != nil {
		delete(g.notified, a.user)
	}
	if len(a.groups) == 0 {
		delete(s.agents, a.user)
	}
}

// AgentWorkgroups lists the workgroups user is online in.
func (s *Service) AgentWorkgroups(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{}
	if a := s.agents[user]; a != nil {
		for g := range a.groups {
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return out
}

// Queues shows each queue user is online in.
func (s *Service) Queues(user string) []QueueInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []QueueInfo{}
	a := s.agents[user]
	if a == nil {
		return out
	}
	names := make([]string, 0, len(a.groups))
	for n := range a.groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g := s.groups[n]
		nq := s.summary(g, s.loads())
		qi := QueueInfo{Name: n, Status: nq.Status, AverageWaitTime: nq.AverageWaitTime, OldestEntry: nq.OldestEntry,
			Users: []QueueUser{}, CurrentChats: s.load(user), MaxChats: g.cfg.MaxChats}
		for i, t := range g.queue {
			uid := t.req.UserID
			if uid == "" {
				uid = t.req.User
			}
			qi.Users = append(qi.Users, QueueUser{Ticket: t.id, UserID: uid, QueuePosition: i + 1,
				EstimatedTime: s.estimate(g, i+1), JoinDate: t.joined.UTC()})
		}
		out = append(out, qi)
	}
	return out
}

// --- users ---

// Ask queues a request and returns its ticket.
func (s *Service) Ask(req AskRequest) (TicketInfo, error) {
	if req.Question == "" || req.User == "" || req.Stream == "" {
		return TicketInfo{}, fmt.Errorf("%w: workgroup and question are required", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[req.Workgroup]
	switch {
	case !ok:
		return TicketInfo{}, ErrWorkgroupNotFound
	case !g.cfg.Open:
		return TicketInfo{}, ErrWorkgroupClosed
	case len(g.cfg.Members) == 0:
		return TicketInfo{}, ErrNoMembers
	}
	open := 0
	for _, t := range s.tickets {
		if t.req.User == req.User && t.state != StateEnded {
			open++
		}
	}
	if open >= s.opts.MaxTicketsPerUser {
		return TicketInfo{}, ErrTooManyTickets
	}
	t := &ticket{req: req, id: s.opts.NewID(), state: StateQueued, joined: s.opts.Clock(), excluded: map[string]time.Time{}}
	t.req.Metadata = cloneMap(req.Metadata)
	s.tickets[t.id] = t
	g.queue = append(g.queue, t)
	s.touch()
	s.settle()
	return s.info(t), nil
}

// Ticket returns a ticket to its owner (user) or an admin; anyone else
// gets ErrTicketNotFound, exactly as for a missing ticket.
func (s *Service) Ticket(id, user string, admin bool) (TicketInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.owned(id, user, admin)
	if err != nil {
		return TicketInfo{}, err
	}
	return s.info(t), nil
}

func (s *Service) owned(id, user string, admin bool) (*ticket, error) {
	t, ok := s.tickets[id]
	if !ok || (!admin && t.req.User != user) {
		return nil, ErrTicketNotFound
	}
	return t, nil
}

// Leave ends a ticket: out of the queue (its offer revoked) or out of the
// conversation. It returns the ticket as it was, so the caller can leave
// the room. Leaving an ended ticket is a no-op.
func (s *Service) Leave(id, user string, admin bool) (TicketInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.owned(id, user, admin)
	if err != nil {
		return TicketInfo{}, err
	}
	before := s.info(t)
	s.touch()
	switch t.state {
	case StateQueued:
		s.depart(t, "user left the queue", false)
	case StateAccepting, StateChatting:
		s.end(t, "user left the conversation")
	}
	s.settle()
	return before, nil
}

// --- offers ---

// Accept takes an offer on behalf of the agent it was made to. The ticket
// leaves the queue (state accepting); the caller creates the room named
// RoomName and reports back with RoomReady or AcceptFailed. workgroup, if
// not empty, must be the offer's.
func (s *Service) Accept(user, offerID, workgroup string) (TicketInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.offerOf(user, offerID, workgroup)
	if err != nil {
		return TicketInfo{}, err
	}
	t := o.t
	s.touch()
	s.dropOffer(o)
	s.unqueue(t)
	t.state, t.agent, t.agentSt = StateAccepting, o.agent, o.stream
	t.roomName = "wg-" + s.opts.NewID()
	if g := s.groups[t.req.Workgroup]; g != nil {
		g.waits = append(g.waits, s.opts.Clock().Sub(t.joined))
		if len(g.waits) > 20 {
			g.waits = g.waits[1:]
		}
	}
	s.settle()
	return s.info(t), nil
}

// RoomReady records the room made for an accepted ticket and tells both
// sides: invitationReceived to the agent, offer to the user. agentJID is the
// agent's full JID (the "to" of the invitation).
func (s *Service) RoomReady(ticketID, room, agentJID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[ticketID]
	if !ok || t.state != StateAccepting {
		return ErrTicketNotFound
	}
	t.state, t.room = StateChatting, room
	s.touch()
	s.publish(t.agentSt, InvitationReceived{Type: "invitationReceived", Room: room, Inviter: t.req.Workgroup, From: room,
		To: agentJID, Reason: t.req.Question, Workgroup: t.req.Workgroup, Ticket: t.id})
	s.publish(t.req.Stream, Offer{Type: "offer", MucRoom: room, From: room, To: t.req.User, Agent: t.agent,
		Workgroup: t.req.Workgroup, Ticket: t.id})
	return nil
}

// AcceptFailed puts an accepted ticket back at the head of its queue (the
// room could not be made) and routes it on.
func (s *Service) AcceptFailed(ticketID, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[ticketID]
	if !ok || t.state != StateAccepting {
		return
	}
	s.touch()
	g := s.groups[t.req.Workgroup]
	if g == nil {
		s.end(t, reason)
		return
	}
	t.state, t.excluded[t.agent] = StateQueued, s.opts.Clock().Add(s.opts.RetryAfter)
	t.agent, t.agentSt, t.roomName = "", "", ""
	g.queue = append([]*ticket{t}, g.queue...)
	s.settle()
}

// Reject declines an offer: it goes to the next agent, and this agent is
// skipped for this request for RetryAfter.
func (s *Service) Reject(user, offerID, workgroup string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.offerOf(user, offerID, workgroup)
	if err != nil {
		return err
	}
	o.t.excluded[o.agent] = s.opts.Clock().Add(s.opts.RetryAfter)
	s.touch()
	s.dropOffer(o)
	s.settle()
	return nil
}

func (s *Service) offerOf(user, offerID, workgroup string) (*offer, error) {
	o, ok := s.offers[offerID]
	if !ok || o.agent != user || (workgroup != "" && o.t.req.Workgroup != workgroup) {
		return nil, ErrOfferNotFound
	}
	return o, nil
}

// --- time ---

// Tick applies what time and the streams did: expired offers are revoked
// and routed on; offers to agents now away are revoked; agents whose
// stream is gone go offline everywhere; queued users whose stream is gone
// leave the queue; old ended tickets are forgotten.
func (s *Service) Tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Clock()
	for _, a := range s.agentsSorted() {
		switch s.availability(a.stream) {
		case Gone:
			for g := range a.groups {
				s.agentLeaves(a, g, "agent disconnected")
			}
		case Away:
			for _, o := range s.offersOf(a.user) {
				s.revoke(o, "agent unavailable", true)
			}
		}
	}
	for _, o := range s.offersSorted() {
		if !now.Before(o.deadline) {
			o.t.excluded[o.agent] = now.Add(s.opts.RetryAfter)
			s.revoke(o, "timeout", true)
		}
	}
	for _, t := range s.ticketsSorted() {
		if t.state == StateQueued && s.availability(t.req.Stream) == Gone {
			s.depart(t, "user disconnected", false)
		}
		if t.state == StateChatting {
			userIn, agentIn := s.inRoom(t.req.Stream, t.room), s.inRoom(t.agentSt, t.room)
			if userIn && !t.userSeen {
				t.userSeen = true
				s.touch()
			}
			if t.userSeen && !userIn && !agentIn {
				s.end(t, "both left the room")
			}
		}
		if t.state == StateEnded && now.Sub(t.ended) > s.opts.RetainEnded {
			delete(s.tickets, t.id)
			s.touch()
		}
	}
	s.settle()
}

// --- internals, under s.mu ---

// settle routes what can be routed, then sends queue updates that changed.
func (s *Service) settle() {
	now := s.opts.Clock()
	loads := s.loads()
	for _, name := range s.groupNames() {
		g := s.groups[name]
		for _, t := range g.queue {
			for a, until := range t.excluded {
				if !now.Before(until) {
					delete(t.excluded, a)
					s.touch()
				}
			}
			if t.offer != nil || !g.cfg.Open {
				continue
			}
			idx, a := s.nextAgent(g, t, loads)
			if a == nil {
				continue
			}
			g.rr = idx
			s.touch()
			loads[a.user]++
			o := &offer{id: s.opts.NewID(), t: t, agent: a.user, stream: a.stream,
				deadline: now.Add(time.Duration(g.cfg.OfferTimeout) * time.Second)}
			t.offer, s.offers[o.id] = o, o
			meta := cloneMap(t.req.Metadata)
			if meta == nil {
				meta = map[string]string{}
			}
			meta["question"], meta["email"], meta["username"] = t.req.Question, t.req.Email, t.req.User
			if t.req.UserID != "" {
				meta["userID"] = t.req.UserID
			}
			if t.req.Nickname != "" {
				meta["nickname"] = t.req.Nickname
			}
			s.publish(a.stream, OfferReceived{Type: "offerReceived", Workgroup: name, ID: o.id, From: t.req.User,
				Timeout: g.cfg.OfferTimeout, MetaData: meta})
		}
		for i, t := range g.queue {
			pos, est := i+1, s.estimate(g, i+1)
			if pos != t.lastPos || est != t.lastEst {
				t.lastPos, t.lastEst = pos, est
				s.touch()
				s.publish(t.req.Stream, UpdateQueue{Type: "update-queue", Workgroup: name, Ticket: t.id, Position: pos, RemainingTime: est})
			}
		}
		nq := s.summary(g, loads)
		for _, a := range s.agentsSorted() {
			if !a.groups[name] {
				continue
			}
			if last, ok := g.notified[a.user]; !ok || !sameNotify(last, nq) {
				g.notified[a.user] = nq
				s.touch() // not in State, but counting it costs one extra save at most
				s.publish(a.stream, nq)
			}
		}
	}
}

func sameNotify(a, b NotifyQueue) bool {
	sameTime := (a.OldestEntry == nil) == (b.OldestEntry == nil) && (a.OldestEntry == nil || a.OldestEntry.Equal(*b.OldestEntry))
	return sameTime && a.UserCount == b.UserCount && a.AverageWaitTime == b.AverageWaitTime && a.Status == b.Status
}

// nextAgent is round-robin: the first member after g.rr (in member order)
// who is online in g, available, under MaxChats and not skipped for t.
func (s *Service) nextAgent(g *group, t *ticket, loads map[string]int) (int, *agent) {
	n := len(g.cfg.Members)
	for i := 1; i <= n; i++ {
		idx := ((g.rr+i)%n + n) % n
		user := g.cfg.Members[idx]
		a := s.agents[user]
		if a == nil || !a.groups[g.cfg.Name] {
			continue
		}
		if _, skip := t.excluded[user]; skip {
			continue
		}
		if loads[user] >= g.cfg.MaxChats || s.availability(a.stream) != Available {
			continue
		}
		return idx, a
	}
	return -1, nil
}

// load counts an agent's pending offers and running chats, everywhere.
func (s *Service) load(user string) int { return s.loads()[user] }

// loads counts every agent's pending offers and running chats.
func (s *Service) loads() map[string]int {
	n := map[string]int{}
	for _, o := range s.offers {
		n[o.agent]++
	}
	for _, t := range s.tickets {
		if t.state == StateAccepting || t.state == StateChatting {
			n[t.agent]++
		}
	}
	return n
}

func (s *Service) summary(g *group, loads map[string]int) NotifyQueue {
	nq := NotifyQueue{Type: "notify-queue", Workgroup: g.cfg.Name, UserCount: len(g.queue),
		AverageWaitTime: int(avgWait(g) / time.Second), Status: "closed"}
	if len(g.queue) > 0 {
		oldest := g.queue[0].joined.UTC()
		nq.OldestEntry = &oldest
	}
	if g.cfg.Open {
		nq.Status = "active" // open, but no agent can take a request now
		for _, m := range g.cfg.Members {
			if a := s.agents[m]; a != nil && a.groups[g.cfg.Name] && loads[m] < g.cfg.MaxChats && s.availability(a.stream) == Available {
				nq.Status = "open"
				break
			}
		}
	}
	return nq
}

func avgWait(g *group) time.Duration {
	if len(g.waits) == 0 {
		return 0
	}
	var sum time.Duration
	for _, w := range g.waits {
		sum += w
	}
	return sum / time.Duration(len(g.waits))
}

// estimate is the expected wait at a position, in seconds.
func (s *Service) estimate(g *group, pos int) int {
	per := avgWait(g)
	if per <= 0 {
		per = defaultEstimate
	}
	return int((per * time.Duration(pos)).Round(time.Second) / time.Second)
}

// revoke withdraws an offer (telling the agent when notify is set).
func (s *Service) revoke(o *offer, reason string, notify bool) {
	if notify {
		s.publish(o.stream, OfferRevoked{Type: "offerRevoked", Workgroup: o.t.req.Workgroup, ID: o.id, From: o.t.req.User, Reason: reason})
	}
	s.dropOffer(o)
}

func (s *Service) dropOffer(o *offer) {
	s.touch()
	delete(s.offers, o.id)
	if o.t.offer == o {
		o.t.offer = nil
	}
}

// depart takes a queued ticket out of the queue for good.
func (s *Service) depart(t *ticket, reason string, tell bool) {
	s.touch()
	if t.offer != nil {
		s.revoke(t.offer, reason, true)
	}
	s.unqueue(t)
	t.state, t.reason, t.ended = StateEnded, reason, s.opts.Clock()
	if tell {
		s.publish(t.req.Stream, DepartQueue{Type: "depart-queue", Workgroup: t.req.Workgroup, Ticket: t.id, Reason: reason})
	}
}

// end finishes a conversation; the agent's capacity is freed.
func (s *Service) end(t *ticket, reason string) {
	s.touch()
	t.state, t.reason, t.ended = StateEnded, reason, s.opts.Clock()
}

func (s *Service) unqueue(t *ticket) {
	s.touch()
	if g := s.groups[t.req.Workgroup]; g != nil {
		g.queue = slices.DeleteFunc(g.queue, func(x *ticket) bool { return x == t })
	}
	t.lastPos, t.lastEst = 0, 0
}

func (s *Service) info(t *ticket) TicketInfo {
	ti := TicketInfo{Ticket: t.id, Workgroup: t.req.Workgroup, State: t.state, Question: t.req.Question,
		Joined: t.joined.UTC(), Room: t.room, Agent: t.agent, Reason: t.reason, User: t.req.User,
		Stream: t.req.Stream, AgentStream: t.agentSt, RoomName: t.roomName}
	if g := s.groups[t.req.Workgroup]; g != nil && t.state == StateQueued {
		if i := slices.Index(g.queue, t); i >= 0 {
			ti.Position, ti.EstimatedWait = i+1, s.estimate(g, i+1)
		}
	}
	return ti
}

func (s *Service) offersOf(user string) []*offer {
	var out []*offer
	for _, o := range s.offersSorted() {
		if o.agent == user {
			out = append(out, o)
		}
	}
	return out
}

// The sorted views keep event order deterministic.

func (s *Service) offersSorted() []*offer {
	out := make([]*offer, 0, len(s.offers))
	for _, o := range s.offers {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (s *Service) agentsSorted() []*agent {
	out := make([]*agent, 0, len(s.agents))
	for _, a := range s.agents {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].user < out[j].user })
	return out
}

func (s *Service) ticketsSorted() []*ticket {
	out := make([]*ticket, 0, len(s.tickets))
	for _, t := range s.tickets {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].joined.Before(out[j].joined) || (out[i].joined.Equal(out[j].joined) && out[i].id < out[j].id)
	})
	return out
}

func (s *Service) groupNames() []string {
	out := make([]string, 0, len(s.groups))
	for n := range s.groups {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
