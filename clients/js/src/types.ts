// Names for the generated OpenAPI types (src/generated/openapi.ts), so
// callers write LoginResponse instead of components['schemas']['api.LoginResponse'].
import type { components, paths } from './generated/openapi.js';
import type { MessageEvent } from './events.js';

type S = components['schemas'];

export type ErrorResponse = S['api.ErrorResponse'];
export type LoginRequest = S['api.LoginRequest'];
export type LoginResponse = S['api.LoginResponse'];
export type MessageRequest = S['api.MessageRequest'];
export type MessageResponse = S['api.MessageResponse'];
export type MarkerRequest = S['api.MarkerRequest'];
export type PresenceRequest = S['api.PresenceRequest'];
export type ContactRequest = S['api.ContactRequest'];
export type Contact = S['gateway.Contact'];
export type CommandRequest = S['api.CommandRequest'];
export type CreateRoomRequest = S['api.CreateRoomRequest'];
export type CreateRoomResponse = S['api.CreateRoomResponse'];
export type JoinRequest = S['api.JoinRequest'];
export type ReasonRequest = S['api.ReasonRequest'];
export type SubjectRequest = S['api.SubjectRequest'];
export type AffiliationRequest = S['api.AffiliationRequest'];
export type RoleRequest = S['api.RoleRequest'];
export type RoomInfo = S['gateway.RoomInfo'];
export type JoinedRoom = S['gateway.JoinedRoom'];
export type DiscoItem = S['gateway.DiscoItem'];
export type Bookmark = S['gateway.Bookmark'];
export type VCard = S['gateway.VCard'];
export type PubSubSubscription = S['gateway.PubSubSubscription'];
export type PublishRequest = S['api.PublishRequest'];
export type PublishResponse = S['api.PublishResponse'];
export type SubscribeRequest = S['api.SubscribeRequest'];
export type NotificationRequest = S['api.NotificationRequest'];
export type StreamInfo = S['api.StreamInfo'];
export type StreamList = S['api.StreamList'];
export type AskRequest = S['api.AskRequest'];
export type TicketInfo = S['fastpath.TicketInfo'];
export type Workgroup = S['fastpath.Workgroup'];
export type WorkgroupList = S['api.WorkgroupList'];
export type AssistList = S['api.AssistList'];
export type QueueList = S['api.QueueList'];
export type AcceptResponse = S['api.AcceptResponse'];
export type HealthResponse = S['api.HealthResponse'];

/**
 * A history page. The spec types messages as plain objects (swag cannot
 * see the event type behind them); they are message events.
 */
export type HistoryPage = Omit<S['gateway.HistoryPage'], 'messages'> & { messages?: MessageEvent[] };

/** Query of GET /chat/{streamid}/messages (XEP-0313 + XEP-0059 RSM). */
export type HistoryQuery = NonNullable<paths['/restapi/v1/chat/{streamid}/messages']['get']['parameters']['query']>;
/** Query of GET /chat/{streamid}/rooms/{room}/messages. */
export type RoomHistoryQuery = NonNullable<paths['/restapi/v1/chat/{streamid}/rooms/{room}/messages']['get']['parameters']['query']>;
/** Query of GET /ask/{ticket}/transcript. */
export type TranscriptQuery = NonNullable<paths['/restapi/v1/ask/{ticket}/transcript']['get']['parameters']['query']>;

/** An XEP-0085 chat state. */
export type ChatState = 'active' | 'composing' | 'paused' | 'inactive' | 'gone';
/** An XEP-0333 marker. */
export type Marker = 'received' | 'displayed';
