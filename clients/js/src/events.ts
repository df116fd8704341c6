// Event payloads of the gateway's event stream (SSE and WebSocket).
//
// Written by hand: the OpenAPI document describes the REST routes but not
// the JSON objects inside the event stream. Every interface below mirrors a
// Go type, named in its comment (gateway/events.go, gateway/muc.go,
// gateway/pubsub.go, gateway/roster.go, fastpath/fastpath.go, sse/frame.go);
// a field the Go type marks omitempty is optional here.

/** gateway.StanzaError: an error condition of a bounced stanza (RFC 6120 §8.3). */
export interface StanzaError {
  type: string;
  condition: string;
  text?: string;
}

/** gateway.MessageEvent: chat, normal, headline and groupchat messages. */
export interface MessageEvent {
  type: 'chat' | 'normal' | 'headline' | 'groupchat';
  /** The stanza id the sender chose (for markers, edits, deletes). */
  id?: string;
  origin_id?: string;
  /** The archive id (XEP-0359), the cursor for history. */
  stanza_id?: string;
  from: string;
  to: string;
  body: string;
  subject?: string;
  thread?: string;
  /** RFC 3339 UTC: the trusted delay stamp, else the receipt time. */
  stamp: string;
  delayed?: boolean;
  claimed_stamp?: string;
  data?: unknown;
  extraParams?: Record<string, string>;
  attachments?: Record<string, string>[];
  chatstate?: string;
  markable?: boolean;
  destroy_after?: number;
  carbon?: 'sent' | 'received';
  room?: string;
  nick?: string;
  extensions?: string[];
}

/** gateway.MessageEvent with type "edit": a correction (XEP-0308) of replace_id. */
export interface EditEvent extends Omit<MessageEvent, 'type'> {
  type: 'edit';
  replace_id: string;
}

/** gateway.ErrorEvent: a bounced message, or (skipped set) a stanza the gateway would not read. */
export interface ErrorEvent {
  type: 'error';
  id?: string;
  from: string;
  to: string;
  error: StanzaError;
  skipped?: 'message' | 'presence' | 'iq';
}

/** gateway.PresenceEvent. */
export interface PresenceEvent {
  type: 'presence';
  from: string;
  to: string;
  /** available, unavailable, subscribe, subscribed, ... */
  presence_type: string;
  show: string;
  status: string;
  priority: number;
  error?: StanzaError;
  extensions?: string[];
}

/** gateway.StreamEvent: the state of the stream's XMPP connection. */
export interface StreamEvent {
  type: 'stream';
  state: 'online' | 'reconnecting' | 'offline' | 'lost' | 'resumed';
  jid: string;
  reason?: string;
  attempt?: number;
}

/** gateway.ChatStateEvent (XEP-0085). */
export interface ChatStateEvent {
  type: 'chatstate';
  from: string;
  to: string;
  state: 'active' | 'composing' | 'paused' | 'inactive' | 'gone' | string;
}

/** gateway.MarkerEvent (XEP-0333). */
export interface MarkerEvent {
  type: 'marker';
  marker: 'received' | 'displayed' | string;
  id: string;
  from: string;
  to: string;
  extraParams?: Record<string, string>;
}

/** gateway.DeleteEvent: the sender deleted message id. */
export interface DeleteEvent {
  type: 'delete';
  id: string;
  from: string;
  to: string;
  extraParams?: Record<string, string>;
}

/** gateway.SystemEvent: a system notification. */
export interface SystemEvent {
  type: 'system';
  id?: string;
  from: string;
  to: string;
  body?: string;
  stamp: string;
  params: Record<string, string>;
}

/** gateway.CommandEvent: an x:oob service command. */
export interface CommandEvent {
  type: 'command';
  id?: string;
  from: string;
  to: string;
  command: string;
  action?: string;
  /** Parsed leniently into JSON; the raw text (a string) when that failed. */
  payload?: unknown;
  payload_error?: string;
  in_reply_to?: string;
}

/** gateway.RawEvent: a stanza the gateway does not model, as XML. */
export interface RawEvent {
  type: 'xmpp';
  from?: string;
  stanza: string;
}

/** gateway.Occupant. */
export interface Occupant {
  nick: string;
  role: string;
  affiliation: string;
  jid?: string;
  show: string;
  status?: string;
}

/** gateway.OccupantEvent: an occupant joined, changed or left. */
export interface OccupantEvent extends Occupant {
  type: 'occupant';
  room: string;
  available: boolean;
  self?: boolean;
  codes?: number[];
  reason?: string;
  actor?: string;
}

/** gateway.SubjectEvent. */
export interface SubjectEvent {
  type: 'subject';
  room: string;
  nick?: string;
  subject: string;
}

/** gateway.InvitationEvent (XEP-0045 §7.8.2 mediated, XEP-0249 direct). */
export interface InvitationEvent {
  type: 'invitation';
  room: string;
  from: string;
  inviter?: string;
  reason?: string;
  password?: string;
  direct: boolean;
}

/** gateway.RoomErrorEvent. */
export interface RoomErrorEvent {
  type: 'room_error';
  room: string;
  nick?: string;
  condition: string;
  error: StanzaError;
}

/** gateway.PubSubItem. */
export interface PubSubItem {
  id: string;
  publisher?: string;
  payload?: string;
  payload_json?: unknown;
  skipped?: string;
}

/** gateway.PubSubEvent: item notifications or retractions (XEP-0060). */
export interface PubSubEvent {
  type: 'pubsub';
  service: string;
  node: string;
  items: PubSubItem[];
  retract?: string[];
  subid?: string;
}

/** gateway.PubSubSubscriptionEvent: a pending subscription approved or refused. */
export interface PubSubSubscriptionEvent {
  type: 'pubsub_subscription';
  service: string;
  node: string;
  jid?: string;
  state: string;
  subid?: string;
  expiry?: string;
}

/** gateway.SubscriptionEvent: a presence subscription request or answer. */
export interface SubscriptionEvent {
  type: 'subscription';
  from: string;
  to: string;
  action: 'subscribe' | 'subscribed' | 'unsubscribe' | 'unsubscribed';
  status?: string;
}

/** gateway.RosterItem. */
export interface RosterItem {
  jid: string;
  name?: string;
  groups: string[];
  subscription: 'none' | 'to' | 'from' | 'both' | 'remove' | string;
  ask?: string;
}

/** gateway.RosterEvent: a roster push. */
export interface RosterEvent {
  type: 'roster';
  item: RosterItem;
}

/** fastpath.UpdateQueue: a queued user's place. */
export interface UpdateQueueEvent {
  type: 'update-queue';
  workgroup: string;
  ticket: string;
  position: number;
  remaining_time: number;
}

/** fastpath.DepartQueue: a request left the queue. */
export interface DepartQueueEvent {
  type: 'depart-queue';
  workgroup: string;
  ticket: string;
  reason: string;
}

/** fastpath.NotifyQueue: the state of a queue, for agents. */
export interface NotifyQueueEvent {
  type: 'notify-queue';
  workgroup: string;
  userCount: number;
  averageWaitTime: number;
  oldestEntry: string | null;
  status: string;
}

/** fastpath.OfferReceived: a request offered to an agent. */
export interface OfferReceivedEvent {
  type: 'offerReceived';
  workgroup: string;
  id: string;
  from: string;
  timeout: number;
  metaData: Record<string, string>;
}

/** fastpath.OfferRevoked. */
export interface OfferRevokedEvent {
  type: 'offerRevoked';
  workgroup: string;
  id: string;
  from: string;
  reason: string;
}

/** fastpath.InvitationReceived: the room, for the accepting agent. */
export interface InvitationReceivedEvent {
  type: 'invitationReceived';
  room: string;
  inviter: string;
  from: string;
  to: string;
  reason: string;
  workgroup: string;
  ticket: string;
}

/** fastpath.Offer: the room to join, for the user who asked. */
export interface OfferEvent {
  type: 'offer';
  mucRoom: string;
  from: string;
  to: string;
  agent: string;
  workgroup: string;
  ticket: string;
}

/**
 * sse.resetEvent: the Last-Event-ID given is older than the replay window
 * (or from another life of a cluster's log). Events were lost; the retained
 * ones follow. Resynchronise state (contacts, history) from the REST routes.
 */
export interface ResetEvent {
  type: 'reset';
  last_event_id: string;
  oldest_id: number;
  reason: string;
}

/** Every event the gateway sends, discriminated on `type`. */
export type GatewayEventPayload =
  | MessageEvent | EditEvent | ErrorEvent | PresenceEvent | StreamEvent | ChatStateEvent | MarkerEvent
  | DeleteEvent | SystemEvent | CommandEvent | RawEvent | OccupantEvent | SubjectEvent | InvitationEvent
  | RoomErrorEvent | PubSubEvent | PubSubSubscriptionEvent | SubscriptionEvent | RosterEvent
  | UpdateQueueEvent | DepartQueueEvent | NotifyQueueEvent | OfferReceivedEvent | OfferRevokedEvent
  | InvitationReceivedEvent | OfferEvent | ResetEvent;

/**
 * An event as the client hands it out: the payload plus `event_id`, its
 * position in the stream ("<n>" or, in cluster mode, "<n>.<epoch>"), the
 * SSE id line or the WebSocket frame's event_id.
 */
export type GatewayEvent = GatewayEventPayload & { event_id: string };

/** The `type` values. */
export type GatewayEventType = GatewayEventPayload['type'];

/** The event whose `type` is T. */
export type EventOf<T extends GatewayEventType> = Extract<GatewayEvent, { type: T }>;
