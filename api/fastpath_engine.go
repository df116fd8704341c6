package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/xmppgw/xmppgw/fastpath"
)

// FastpathCluster is the cluster's workgroup queues as a node sees them
// (internal/cluster.FastpathLeader): the engine runs on one node, the
// leader; every other node calls it over the internal listener.
type FastpathCluster interface {
	// Local is the engine when this node leads, else nil.
	Local() *fastpath.Service
	// LeaderAddr is the leader's internal address ("" while none leads).
	LeaderAddr(ctx context.Context) (string, error)
	// Persist writes the state of svc, the engine a call ran on, to the
	// cluster if it changed; it fails when svc no longer leads (the node
	// stepped down meanwhile), so the call answers 503, not a change the
	// cluster lost.
	Persist(ctx context.Context, svc *fastpath.Service) error
}

// fastpathEngine runs one engine call: on this node's engine, or on the
// cluster's leader. Both ways end in fastpathCall.run, so a call means
// the same wherever it runs.
type fastpathEngine interface {
	do(ctx context.Context, c fastpathCall) (fastpathResult, error)
}

// Engine operations (fastpathCall.Op), one per fastpath.Service method
// the handlers use.
const (
	fpAgentWorkgroups = "agent-workgroups"
	fpQueues          = "queues"
	fpAgentOnline     = "agent-online"
	fpAgentOffline    = "agent-offline"
	fpAccept          = "accept"
	fpAcceptFailed    = "accept-failed"
	fpRoomReady       = "room-ready"
	fpReject          = "reject"
	fpAsk             = "ask"
	fpTicket          = "ticket"
	fpLeave           = "leave"
	fpWorkgroups      = "workgroups"
	fpWorkgroup       = "workgroup"
	fpCreateWorkgroup = "create-workgroup"
	fpUpdateWorkgroup = "update-workgroup"
	fpDeleteWorkgroup = "delete-workgroup"
)

// fastpathCall is one engine call with its arguments, as it crosses the
// internal listener (JSON).
type fastpathCall struct {
	Op        string               `json:"op"`
	User      string               `json:"user,omitempty"`
	Stream    string               `json:"stream,omitempty"`
	Workgroup string               `json:"workgroup,omitempty"`
	Offer     string               `json:"offer,omitempty"`
	Ticket    string               `json:"ticket,omitempty"`
	Room      string               `json:"room,omitempty"`
	Agent     string               `json:"agent,omitempty"`
	Reason    string               `json:"reason,omitempty"`
	Admin     bool                 `json:"admin,omitempty"`
	Ask       *fastpath.AskRequest `json:"ask,omitempty"`
	Group     *fastpath.Workgroup  `json:"group,omitempty"`
}

// fastpathResult is what a call returned. Kind names the fastpath error
// (fastpathErrorKinds) and Error carries its text.
type fastpathResult struct {
	Ticket *wireTicket          `json:"ticket,omitempty"`
	Names  []string             `json:"names,omitempty"`
	Queues []fastpath.QueueInfo `json:"queues,omitempty"`
	Groups []fastpath.Workgroup `json:"groups,omitempty"`
	Group  *fastpath.Workgroup  `json:"group,omitempty"`
	Kind   string               `json:"kind,omitempty"`
	Error  string               `json:"error,omitempty"`
}

// wireTicket is a TicketInfo with the fields its JSON form leaves out for
// clients (the handlers need them).
type wireTicket struct {
	fastpath.TicketInfo
	User        string `json:"x_user"`
	Stream      string `json:"x_stream"`
	AgentStream string `json:"x_agent_stream"`
	RoomName    string `json:"x_room_name"`
}

func toWire(t fastpath.TicketInfo) *wireTicket {
	return &wireTicket{TicketInfo: t, User: t.User, Stream: t.Stream, AgentStream: t.AgentStream, RoomName: t.RoomName}
}

// info is the TicketInfo the handlers see (the zero one if none came).
func (r fastpathResult) info() fastpath.TicketInfo {
	if r.Ticket == nil {
		return fastpath.TicketInfo{}
	}
	t := r.Ticket.TicketInfo
	t.User, t.Stream, t.AgentStream, t.RoomName = r.Ticket.User, r.Ticket.Stream, r.Ticket.AgentStream, r.Ticket.RoomName
	return t
}

// fastpathErrorKinds names package fastpath's errors for the wire.
var fastpathErrorKinds = map[string]error{
	"invalid": fastpath.ErrInvalid, "workgroup-not-found": fastpath.ErrWorkgroupNotFound,
	"workgroup-exists": fastpath.ErrWorkgroupExists, "workgroup-closed": fastpath.ErrWorkgroupClosed,
	"no-members": fastpath.ErrNoMembers, "not-member": fastpath.ErrNotMember, "not-online": fastpath.ErrNotOnline,
	"ticket-not-found": fastpath.ErrTicketNotFound, "offer-not-found": fastpath.ErrOfferNotFound,
	"too-many-tickets": fastpath.ErrTooManyTickets,
}

// engineError is a fastpath error as a call returns it: its text, and the
// sentinel errors.Is finds.
type engineError struct {
	kind error
	msg  string
}

func (e engineError) Error() string { return e.msg }
func (e engineError) Unwrap() error { return e.kind }

// err is the call's error, nil when it succeeded.
func (r fastpathResult) err() error {
	if r.Error == "" {
		return nil
	}
	if kind, ok := fastpathErrorKinds[r.Kind]; ok {
		return engineError{kind: kind, msg: r.Error}
	}
	return errors.New(r.Error)
}

func (r *fastpathResult) fail(err error) {
	if err == nil {
		return
	}
	r.Error = err.Error()
	for name, kind := range fastpathErrorKinds {
		if errors.Is(err, kind) {
			r.Kind = name
			return
		}
	}
}

// run executes the call on svc.
func (c fastpathCall) run(svc *fastpath.Service) fastpathResult {
	var r fastpathResult
	ticket := func(t fastpath.TicketInfo, err error) {
		if err == nil {
			r.Ticket = toWire(t)
		}
		r.fail(err)
	}
	group := func(w fastpath.Workgroup, err error) {
		if err == nil {
			r.Group = &w
		}
		r.fail(err)
	}
	switch c.Op {
	case fpAgentWorkgroups:
		r.Names = svc.AgentWorkgroups(c.User)
	case fpQueues:
		r.Queues = svc.Queues(c.User)
	case fpAgentOnline:
		r.fail(svc.AgentOnline(c.User, c.Stream, c.Workgroup))
	case fpAgentOffline:
		r.fail(svc.AgentOffline(c.User, c.Workgroup))
	case fpAccept:
		ticket(svc.Accept(c.User, c.Offer, c.Workgroup))
	case fpAcceptFailed:
		svc.AcceptFailed(c.Ticket, c.Reason)
	case fpRoomReady:
		r.fail(svc.RoomReady(c.Ticket, c.Room, c.Agent))
	case fpReject:
		r.fail(svc.Reject(c.User, c.Offer, c.Workgroup))
	case fpAsk:
		if c.Ask == nil {
			r.fail(fmt.Errorf("%w: no request", fastpath.ErrInvalid))
			break
		}
		ticket(svc.Ask(*c.Ask))
	case fpTicket:
		ticket(svc.Ticket(c.Ticket, c.User, c.Admin))
	case fpLeave:
		ticket(svc.Leave(c.Ticket, c.User, c.Admin))
	case fpWorkgroups:
		r.Groups = svc.Workgroups()
	case fpWorkgroup:
		group(svc.Workgroup(c.Workgroup))
	case fpCreateWorkgroup, fpUpdateWorkgroup:
		if c.Group == nil {
			r.fail(fmt.Errorf("%w: no workgroup", fastpath.ErrInvalid))
			break
		}
		if c.Op == fpCreateWorkgroup {
			group(svc.CreateWorkgroup(*c.Group))
		} else {
			group(svc.UpdateWorkgroup(c.Workgroup, *c.Group))
		}
	case fpDeleteWorkgroup:
		r.fail(svc.DeleteWorkgroup(c.Workgroup))
	default:
		r.fail(fmt.Errorf("%w: unknown operation %q", fastpath.ErrInvalid, c.Op))
	}
	return r
}

// localEngine is this node's engine; persist (cluster leader only) saves
// its state after each call, so what a call answered outlives the node.
type localEngine struct {
	svc     *fastpath.Service
	persist func(context.Context, *fastpath.Service) error
}

func (e localEngine) do(ctx context.Context, c fastpathCall) (fastpathResult, error) {
	r := c.run(e.svc)
	if e.persist != nil {
		if err := e.persist(ctx, e.svc); err != nil {
			return r, errClusterNotReady.wrap("the workgroup queues' state was not saved: %v", err)
		}
	}
	return r, r.err()
}

// remoteEngine is the cluster's leader, called over its internal listener.
type remoteEngine struct {
	s    *Server
	addr string
}

// fastpathPath is the internal listener's route for engine calls.
const fastpathPath = "/internal/v1/fastpath"

// fastpathCallTimeout bounds one engine call on the leader.
const fastpathCallTimeout = 10 * time.Second

func (e remoteEngine) do(ctx context.Context, c fastpathCall) (fastpathResult, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return fastpathResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, fastpathCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.addr+fastpathPath, bytes.NewReader(body))
	if err != nil {
		return fastpathResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(clusterSecretHeader, string(e.s.cfg.ClusterSecret))
	res, err := e.s.fwd.client.Do(req)
	if err != nil {
		return fastpathResult{}, errClusterNotReady.wrap("the node running the workgroup queues did not answer")
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fastpathResult{}, errClusterNotReady.wrap("the node running the workgroup queues answered %d", res.StatusCode)
	}
	var r fastpathResult
	if err := json.NewDecoder(http.MaxBytesReader(nil, res.Body, 16<<20)).Decode(&r); err != nil {
		return fastpathResult{}, errClusterNotReady.wrap("the workgroup queues' answer: %v", err)
	}
	return r, r.err()
}

// fastpath returns the queues, or 503 when none run.
func (s *Server) fastpath(ctx context.Context) (fastpathEngine, error) {
	if fc := s.cfg.FastpathCluster; fc != nil {
		if svc := fc.Local(); svc != nil {
			return localEngine{svc: svc, persist: fc.Persist}, nil
		}
		addr, err := fc.LeaderAddr(ctx)
		switch {
		case err != nil:
			return nil, errClusterNotReady.wrap("%v", err)
		case addr == "":
			return nil, errClusterNotReady.wrap("no node runs the workgroup queues right now")
		}
		return remoteEngine{s: s, addr: addr}, nil
	}
	if s.cfg.Fastpath == nil {
		return nil, errNotConfigured.wrap("workgroups (fastpath) are not enabled")
	}
	return localEngine{svc: s.cfg.Fastpath}, nil
}

// serveFastpathCall is the leader's side of remoteEngine (internal
// listener): the call runs on this node's engine, if it still leads.
func (s *Server) serveFastpathCall(w http.ResponseWriter, r *http.Request) error {
	fc := s.cfg.FastpathCluster
	if fc == nil {
		return errNotFound
	}
	svc := fc.Local()
	if svc == nil {
		return errClusterNotReady.wrap("this node does not run the workgroup queues (any more)")
	}
	var c fastpathCall
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)).Decode(&c); err != nil {
		return errInvalidJSON.wrap("%v", err)
	}
	res := c.run(svc)
	if err := fc.Persist(r.Context(), svc); err != nil {
		return errClusterNotReady.wrap("the workgroup queues' state was not saved: %v", err)
	}
	return writeOK(w, http.StatusOK, res)
}

// groupOf is the workgroup a call returned (zero if none).
func groupOf(r fastpathResult) fastpath.Workgroup {
	if r.Group == nil {
		return fastpath.Workgroup{}
	}
	return *r.Group
}

// nonNil keeps an empty list a JSON [] after the trip over the wire
// (omitempty drops it).
func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}
