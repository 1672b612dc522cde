//! The WCS WebSocket protocol, as the official `@flashphoner/websdk` speaks it.
//!
//! Every message both ways is `{"message": NAME, "data": [..]}`. The client opens with
//! `connection`, we answer `getUserData` (the session is ESTABLISHED). `playStream` carries
//! the browser's offer; we answer `setRemoteSDP` `[mediaSessionId, answer]` and then
//! `notifyStreamStatusEvent`s (PLAYING, STOPPED, FAILED with an info); a viewer whose link
//! carries less than the stream sends hears the SDK's `notEnoughBandwidth` stream event
//! and the older NOT_ENOUGH_BANDWIDTH status, and plays on. `publishStream`
//! carries a publisher's sendonly offer: `setRemoteSDP` with the answer, then PUBLISHING
//! (with `record` and, once a recording has one, `recordName`), and UNPUBLISHED at its
//! end (`unPublishStream`, the session closing, REST terminate) or FAILED (`Failed by RTP
//! activity`). Either side pings.
//! A message we do not know is logged and ignored; a message we cannot parse gets a `fail`
//! reply. Neither ends the session. Closing the socket stops the session's streams.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

use crate::context::ServerContext;
use crate::hooks::Hook;
use crate::media::{Ending, StopReason, ViewerProtocol};
use crate::playback::{self, Playback, Requester};
use crate::publishing::{self, PublishRequester, Publishing};
use crate::stream::constraints::VideoConstraints;
use crate::stream::published::{PublishProtocol, PublishedHandle};
use crate::stream::{MediaInfo, PlayKey, PlayStatus, StatusTx, StreamError, StreamStatus};
use crate::webrtc::IceTransport;

#[derive(Deserialize)]
struct Incoming {
    message: String,
    #[serde(default)]
    data: Vec<Value>,
}

/// The fields of `playStream` / `stopStream` we use (the SDK sends many more).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamRequest {
    media_session_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    sdp: Option<String>,
    /// `"UDP"` or `"TCP"`: the candidates the SDK's `transport` option asks for.
    #[serde(default)]
    transport: Option<String>,
    /// `publishStream`: record the published stream.
    #[serde(default)]
    record: bool,
    /// `playStream`: the picture size and bit rate (kbit/s) asked for (0: not asked), as
    /// the SDK copies them from `constraints.video`.
    #[serde(default)]
    width: Option<Value>,
    #[serde(default)]
    height: Option<Value>,
    #[serde(default)]
    bitrate: Option<Value>,
    /// `playStream`: the SDK's `constraints`, read when the fields above are absent.
    #[serde(default)]
    constraints: Option<Value>,
}

impl StreamRequest {
    /// The video constraints of a `playStream`: the top-level `width`, `height`,
    /// `bitrate`, else `constraints.video`'s.
    fn video_constraints(&self) -> Result<Option<VideoConstraints>, StreamError> {
        let video = self
            .constraints
            .as_ref()
            .and_then(|c| c.get("video"))
            .filter(|v| v.is_object());
        let pick = |top: Option<&Value>, key: &str| -> Option<Value> {
            top.filter(|v| !is_zero(v))
                .or_else(|| video.and_then(|v| v.get(key)))
                .cloned()
        };
        let (w, h, b) = (
            pick(self.width.as_ref(), "width"),
            pick(self.height.as_ref(), "height"),
            pick(self.bitrate.as_ref(), "bitrate"),
        );
        VideoConstraints::from_request(w.as_ref(), h.as_ref(), b.as_ref())
    }
}

/// 0, `"0"`, `null`: a constraint not asked.
fn is_zero(v: &Value) -> bool {
    v.is_null() || v.as_u64() == Some(0) || v.as_str().is_some_and(|s| s.trim() == "0")
}

/// Frames a WCS message.
fn message(name: &str, data: Value) -> String {
    json!({ "message": name, "data": data }).to_string()
}

/// A play of this session until it has ended: what its statuses are told with. Kept by
/// its key, which tells it from an earlier or later play under the same media session id
/// (the client may reuse ids): the end of one must not forget another.
struct PlayingStream {
    media_session_id: String,
    name: String,
    media: MediaInfo,
    /// Lines about this play are written in it (its `stream` and `viewer`).
    span: tracing::Span,
    /// Set for a publisher: its statuses are PUBLISHING / UNPUBLISHED, with its record
    /// fields.
    published: Option<PublishedHandle>,
}

/// The info of a session's streams when the session is closed for unanswered pings
/// (WCS's words), and the reason in the WebSocket close frame.
pub const KEEP_ALIVE_REASON: &str = StopReason::KeepAlive.info();

/// How long a close frame may take to leave before the socket is dropped anyway.
const SHORT_SEND: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs one WCS session on an upgraded WebSocket until it closes. `_slot` is the session's
/// place under `ws.max_sessions`: held until the session ends.
pub async fn serve_session(
    socket: WebSocket,
    ctx: Arc<ServerContext>,
    peer: String,
    _slot: crate::gate::Permit,
) {
    let span = tracing::info_span!("wcs", peer = %peer);
    Session::new(ctx).run(socket).instrument(span).await;
}

/// Refuses a session over `ws.max_sessions` / `ws.max_sessions_per_client`: a close frame
/// with the plain reason (code 1013, "try again later"), then the socket is dropped.
pub async fn refuse_session(mut socket: WebSocket, reason: String) {
    let close = Message::Close(Some(CloseFrame {
        code: close_code::AGAIN,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(SHORT_SEND, socket.send(close)).await;
}

/// The WCS keep-alive: the server pings every `keep_alive.server_interval`; anything
/// heard from the client (its `pong`, or any other message) shows it is alive. After
/// `keep_alive.probes` pings in a row with nothing heard, the session is given up at
/// the next ping time. Sans-IO: the session loop feeds it.
struct KeepAlive {
    probes: u32,
    unanswered: u32,
}

#[derive(Debug, PartialEq, Eq)]
enum PingDue {
    Send,
    GiveUp,
}

impl KeepAlive {
    fn new(probes: u32) -> Self {
        KeepAlive {
            probes,
            unanswered: 0,
        }
    }

    fn heard(&mut self) {
        self.unanswered = 0;
    }

    /// At each ping time: send the next ping, or give up.
    fn ping_due(&mut self) -> PingDue {
        if self.unanswered >= self.probes {
            return PingDue::GiveUp;
        }
        self.unanswered += 1;
        PingDue::Send
    }
}

struct Session {
    ctx: Arc<ServerContext>,
    /// Our id of this session (also its `authToken`), given in `getUserData`.
    session_id: String,
    /// The client's `connection` fields, once the session is established (REST hooks
    /// send its `appKey` with every play).
    connection: Option<Value>,
    /// Set when the application's backend refused the session: the socket is closed
    /// with this reason once the replies are out.
    refused: Option<String>,
    /// The running play under each media session id the client uses.
    streams: HashMap<String, PlayKey>,
    /// Every play not yet ended (a stopped one stays until its STOPPED is told).
    plays: HashMap<PlayKey, PlayingStream>,
    /// The one channel every play of this session tells its statuses on.
    status_tx: StatusTx,
    status_rx: mpsc::UnboundedReceiver<PlayStatus>,
}

impl Session {
    fn new(ctx: Arc<ServerContext>) -> Self {
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        Session {
            ctx,
            session_id: uuid::Uuid::new_v4().to_string(),
            connection: None,
            refused: None,
            streams: HashMap::new(),
            plays: HashMap::new(),
            status_tx,
            status_rx,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let settings = &self.ctx.settings;
        let mut keep_alive = KeepAlive::new(settings.keep_alive_probes);
        // A client that takes no bytes is as dead as one that answers no ping: a send
        // waits at most as long as the pings would.
        let send_timeout = settings.keep_alive_server_interval * settings.keep_alive_probes;
        let mut ping = tokio::time::interval(settings.keep_alive_server_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        info!("session opened");
        let mut stop_reason = StopReason::SessionDisconnect;
        let mut draining = false;
        let ctx = self.ctx.clone();
        'session: loop {
            // Shutting down: once this session's streams have sent their last status,
            // it closes (crate::shutdown).
            if draining && self.streams.is_empty() {
                let close = Message::Close(Some(CloseFrame {
                    code: close_code::AWAY,
                    reason: crate::shutdown::REASON.into(),
                }));
                let _ = tokio::time::timeout(SHORT_SEND, socket.send(close)).await;
                break;
            }
            let outgoing: Vec<String> = tokio::select! {
                () = ctx.shutdown.draining(), if !draining => {
                    draining = true;
                    continue;
                }
                incoming = socket.recv() => {
                    let text = match incoming {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None => break,
                        Some(Ok(_)) => {
                            keep_alive.heard();
                            continue;
                        }
                        Some(Err(e)) => {
                            // Oversized frames and protocol errors end up here too.
                            if is_clients_doing(&e) {
                                debug!("websocket ended by the client: {e}");
                            } else {
                                warn!("websocket error: {e}");
                            }
                            break;
                        }
                    };
                    keep_alive.heard();
                    self.on_text(text.as_str()).await
                }
                Some(PlayStatus { key, status }) = self.status_rx.recv() => {
                    self.on_status(key, status)
                }
                _ = ping.tick() => {
                    if keep_alive.ping_due() == PingDue::GiveUp {
                        info!("no answer to {} pings in a row: closing", keep_alive.probes);
                        stop_reason = StopReason::KeepAlive;
                        let close = Message::Close(Some(CloseFrame {
                            code: close_code::AWAY,
                            reason: KEEP_ALIVE_REASON.into(),
                        }));
                        let _ = tokio::time::timeout(SHORT_SEND, socket.send(close)).await;
                        break;
                    }
                    vec![message("ping", json!([null]))]
                }
            };
            for text in outgoing {
                let sent =
                    tokio::time::timeout(send_timeout, socket.send(Message::Text(text.into())));
                if !matches!(sent.await, Ok(Ok(()))) {
                    break 'session;
                }
            }
            if let Some(reason) = self.refused.take() {
                let close = Message::Close(Some(CloseFrame {
                    code: close_code::POLICY,
                    reason: reason.into(),
                }));
                let _ = tokio::time::timeout(SHORT_SEND, socket.send(close)).await;
                break;
            }
        }
        for (_, key) in self.streams.drain() {
            self.ctx.registry.stop(key, stop_reason);
        }
        info!("session closed");
    }

    /// Handles one text message, returning the immediate replies.
    async fn on_text(&mut self, text: &str) -> Vec<String> {
        // A play's time to first frame counts from here, the hooks' answer included.
        let received = Instant::now();
        let incoming: Incoming = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                warn!("unparseable message: {e}");
                return vec![fail(&format!("Bad message: {e}"))];
            }
        };
        let first = incoming.data.into_iter().next().unwrap_or(Value::Null);
        if matches!(incoming.message.as_str(), "playStream" | "publishStream") {
            // The start of a handshake in a trace (docs/PERFORMANCE.md, publishing).
            debug!("{} received", incoming.message);
        }
        match incoming.message.as_str() {
            "connection" => self.connect(first).await,
            "ping" => vec![message("pong", json!([null]))],
            "pong" => vec![],
            "playStream" => match serde_json::from_value::<StreamRequest>(first.clone()) {
                // Refused before the hooks are asked: a full session costs nobody anything.
                Ok(req) if self.streams.len() >= self.ctx.settings.ws_max_streams_per_session => {
                    info!(stream = %req.name, "play refused: the session plays its most streams");
                    let reason = too_many_streams(self.ctx.settings.ws_max_streams_per_session);
                    vec![status(&req.media_session_id, &req.name, "FAILED", &reason)]
                }
                Ok(req) => match self.ask_hook(Hook::PlayStream, first).await {
                    Ok(()) => self.play(req, received).await,
                    Err(reason) => {
                        info!(stream = %req.name, "play refused by the application's backend: {reason}");
                        vec![status(&req.media_session_id, &req.name, "FAILED", &reason)]
                    }
                },
                Err(e) => vec![fail(&format!("Bad playStream: {e}"))],
            },
            "stopStream" | "unPublishStream" => {
                if let Ok(req) = serde_json::from_value::<StreamRequest>(first) {
                    if let Some(key) = self.streams.remove(&req.media_session_id) {
                        self.ctx.registry.stop(key, StopReason::ByUser);
                    }
                }
                vec![]
            }
            "publishStream" => match serde_json::from_value::<StreamRequest>(first.clone()) {
                // Refused before the hooks are asked, as a play over the cap is.
                Ok(req) if self.streams.len() >= self.ctx.settings.ws_max_streams_per_session => {
                    info!(stream = %req.name, "publish refused: the session runs its most streams");
                    let reason = too_many_streams(self.ctx.settings.ws_max_streams_per_session);
                    vec![publish_status(
                        &req.media_session_id,
                        &req.name,
                        "FAILED",
                        &reason,
                        req.record,
                    )]
                }
                Ok(req) => match self.ask_hook(Hook::PublishStream, first).await {
                    Ok(()) => self.publish(req),
                    Err(reason) => {
                        info!(stream = %req.name, "publish refused by the application's backend: {reason}");
                        vec![publish_status(
                            &req.media_session_id,
                            &req.name,
                            "FAILED",
                            &reason,
                            req.record,
                        )]
                    }
                },
                Err(e) => vec![fail(&format!("Bad publishStream: {e}"))],
            },
            "availableStream" => {
                let id = first.get("mediaSessionId").cloned().unwrap_or(Value::Null);
                vec![message(
                    "availableStream",
                    json!([{ "id": id, "status": "true", "info": "" }]),
                )]
            }
            other => {
                debug!("ignoring message {other}");
                vec![]
            }
        }
    }

    /// `connection`: asks the REST hooks (when on) with the client's fields, then answers
    /// `getUserData` (ESTABLISHED). A refusal is told as a `fail` with the backend's
    /// reason (the SDK's WARN event) and the socket closes with it (policy, 1008).
    async fn connect(&mut self, fields: Value) -> Vec<String> {
        let asked = Value::Object(self.hook_fields(fields));
        if let Err(refused) = self.ctx.hooks.ask(Hook::Connect, asked.clone()).await {
            info!("session refused by the application's backend: {refused}");
            let reason = refused.to_string();
            self.refused = Some(reason.clone());
            return vec![message(
                "fail",
                json!([{ "apiMethod": "ConnectionStatusEvent", "info": reason }]),
            )];
        }
        self.connection = Some(asked);
        let id = &self.session_id;
        vec![message(
            "getUserData",
            json!([{ "authToken": id, "sessionId": id, "server": "reelcast" }]),
        )]
    }

    /// With REST hooks on: `/playStream` or `/publishStream` with the client's fields
    /// (less its SDP offer), this session's id and its `appKey`. Plays and publishes
    /// before `connection` are refused then.
    async fn ask_hook(&self, hook: Hook, fields: Value) -> Result<(), String> {
        if !self.ctx.hooks.enabled() {
            return Ok(());
        }
        let Some(connection) = &self.connection else {
            return Err("Session is not established: send connection first".into());
        };
        let mut asked = self.hook_fields(fields);
        asked.remove("sdp");
        if let Some(app_key) = connection.get("appKey") {
            asked.insert("appKey".into(), app_key.clone());
        }
        self.ctx
            .hooks
            .ask(hook, Value::Object(asked))
            .await
            .map_err(|refused| refused.to_string())
    }

    /// A client message's fields as a hook is sent them: with this session's id and our
    /// node name (WCS's `nodeId`).
    fn hook_fields(&self, fields: Value) -> serde_json::Map<String, Value> {
        let mut asked = match fields {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        asked.insert("sessionId".into(), json!(self.session_id));
        asked.insert("nodeId".into(), json!("reelcast"));
        asked
    }

    async fn play(&mut self, req: StreamRequest, received: Instant) -> Vec<String> {
        let id = req.media_session_id.clone();
        let name = req.name.clone();
        if self.streams.contains_key(&id) {
            return vec![status(
                &id,
                &name,
                "FAILED",
                "MediaSessionId is already in use",
            )];
        }
        let constraints = match req.video_constraints() {
            Ok(c) => c,
            Err(e) => return vec![status(&id, &name, "FAILED", &e.to_string())],
        };
        let Some(offer) = req.sdp.filter(|s| !s.is_empty()) else {
            return vec![status(&id, &name, "FAILED", "No SDP offer in playStream")];
        };
        let requester = Requester {
            media_session_id: &id,
            protocol: ViewerProtocol::Wcs,
            statuses: Some(self.status_tx.clone()),
            transport: IceTransport::from_wcs(req.transport.as_deref()),
            received,
            constraints,
        };
        match playback::start(&self.ctx, &name, &offer, requester).await {
            Err(e) => {
                info!(stream = %name, "play refused: {e}");
                vec![status(&id, &name, "FAILED", &e.to_string())]
            }
            Ok(Playback {
                key,
                answer_sdp,
                info: media,
                span,
            }) => {
                self.streams.insert(id.clone(), key);
                let play = PlayingStream {
                    media_session_id: id.clone(),
                    name,
                    media,
                    span,
                    published: None,
                };
                self.plays.insert(key, play);
                vec![message("setRemoteSDP", json!([id, answer_sdp]))]
            }
        }
    }

    /// The `sipLogin` the client's `connection` gave (the SDK's `sipOptions.login`): what
    /// WCS puts in a recording's `{login}`. Empty when none.
    fn sip_login(&self) -> &str {
        self.connection
            .as_ref()
            .and_then(|c| c.get("sipLogin"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `publishStream`: answers the publisher's offer and publishes it under its name.
    fn publish(&mut self, req: StreamRequest) -> Vec<String> {
        let (id, name, record) = (req.media_session_id, req.name, req.record);
        if self.streams.contains_key(&id) {
            let reason = "MediaSessionId is already in use";
            return vec![publish_status(&id, &name, "FAILED", reason, record)];
        }
        let Some(offer) = req.sdp.filter(|s| !s.is_empty()) else {
            let reason = "No SDP offer in publishStream";
            return vec![publish_status(&id, &name, "FAILED", reason, record)];
        };
        let requester = PublishRequester {
            media_session_id: &id,
            protocol: PublishProtocol::Wcs,
            statuses: Some(self.status_tx.clone()),
            transport: IceTransport::from_wcs(req.transport.as_deref()),
            record,
            session_id: &self.session_id,
            login: self.sip_login(),
        };
        match publishing::start(&self.ctx, &name, &offer, requester) {
            Err(e) => {
                info!(stream = %name, "publish refused: {e}");
                vec![publish_status(&id, &name, "FAILED", &e.to_string(), record)]
            }
            Ok(Publishing {
                answer_sdp,
                stream,
                span,
            }) => {
                self.streams.insert(id.clone(), stream.key);
                let play = PlayingStream {
                    media_session_id: id.clone(),
                    name,
                    media: stream.info.clone(),
                    span,
                    published: Some(stream.clone()),
                };
                self.plays.insert(stream.key, play);
                vec![message("setRemoteSDP", json!([id, answer_sdp]))]
            }
        }
    }

    /// A play's status, as the message its client gets. The play is forgotten at its end.
    fn on_status(&mut self, key: PlayKey, update: StreamStatus) -> Vec<String> {
        let text = match &update {
            StreamStatus::Playing => match self.plays.get(&key) {
                Some(
                    p @ PlayingStream {
                        published: Some(stream),
                        ..
                    },
                ) => {
                    p.span.in_scope(|| info!("PUBLISHING"));
                    publishing_status(p, stream)
                }
                Some(p) => {
                    p.span.in_scope(|| info!("PLAYING"));
                    status_with_media(&p.media_session_id, &p.name, "PLAYING", &p.media)
                }
                None => return vec![],
            },
            StreamStatus::NotEnoughBandwidth {
                remote_bps,
                network_bps,
            } => {
                let Some(p) = self.plays.get(&key) else {
                    return vec![];
                };
                let info = format!("{remote_bps}/{network_bps}");
                p.span.in_scope(|| info!("NOT_ENOUGH_BANDWIDTH {info}"));
                return not_enough_bandwidth(&p.media_session_id, &p.name, &info);
            }
            StreamStatus::Ended(ending) => {
                let Some(p) = self.plays.remove(&key) else {
                    return vec![];
                };
                if self.streams.get(&p.media_session_id) == Some(&key) {
                    self.streams.remove(&p.media_session_id);
                }
                let code = match (ending, &p.published) {
                    (Ending::Stopped(_), None) => "STOPPED",
                    (Ending::Stopped(_), Some(_)) => "UNPUBLISHED",
                    (Ending::Failed(_), _) => "FAILED",
                };
                p.span.in_scope(|| info!("{code}: {ending}"));
                match &p.published {
                    None => status(&p.media_session_id, &p.name, code, &ending.to_string()),
                    Some(stream) => publish_status(
                        &p.media_session_id,
                        &p.name,
                        code,
                        &ending.to_string(),
                        stream.record,
                    ),
                }
            }
        };
        vec![text]
    }
}

/// What the SDK hears when a viewer's link is too narrow, `info` being WCS's
/// `remoteBitrate/networkBandwidth` (bits per second): the stream event its current versions
/// raise (`STREAM_EVENT` of type `notEnoughBandwidth`), and the status older ones know. The
/// SDK takes neither as a change of the stream's status: it stays PLAYING.
fn not_enough_bandwidth(id: &str, name: &str, info: &str) -> Vec<String> {
    let event = json!({
        "mediaSessionId": id,
        "name": name,
        "type": "notEnoughBandwidth",
        "payload": { "info": info },
    });
    vec![
        message("notifyStreamEvent", json!([event])),
        status(id, name, "NOT_ENOUGH_BANDWIDTH", info),
    ]
}

/// The FAILED info of a play over `ws.max_streams_per_session`.
fn too_many_streams(max: usize) -> String {
    format!("Too many streams in this session: at most {max} play at once (stop one first)")
}

fn status(id: &str, name: &str, code: &str, info: &str) -> String {
    let mut obj = json!({
        "mediaSessionId": id,
        "name": name,
        "published": false,
        "status": code,
        "record": false,
    });
    if !info.is_empty() {
        obj["info"] = json!(info);
    }
    message("notifyStreamStatusEvent", json!([obj]))
}

/// A publisher's status (`published: true`).
fn publish_status(id: &str, name: &str, code: &str, info: &str, record: bool) -> String {
    let mut obj = json!({
        "mediaSessionId": id,
        "name": name,
        "published": true,
        "status": code,
        "record": record,
    });
    if !info.is_empty() {
        obj["info"] = json!(info);
    }
    message("notifyStreamStatusEvent", json!([obj]))
}

/// PUBLISHING, with what the publisher sends, `record`, and `recordName` once a
/// recording of the stream has one (the SDK's `getRecordInfo()` reads it).
fn publishing_status(p: &PlayingStream, stream: &PublishedHandle) -> String {
    let mut obj = json!({
        "mediaSessionId": p.media_session_id,
        "name": p.name,
        "published": true,
        "status": "PUBLISHING",
        "record": stream.record,
        "hasVideo": stream.info.has_video,
        "hasAudio": stream.info.has_audio,
    });
    if let Some(record_name) = stream.record_name() {
        obj["recordName"] = json!(record_name);
    }
    message("notifyStreamStatusEvent", json!([obj]))
}

fn status_with_media(id: &str, name: &str, code: &str, media: &MediaInfo) -> String {
    message(
        "notifyStreamStatusEvent",
        json!([{
            "mediaSessionId": id,
            "name": name,
            "published": false,
            "status": code,
            "record": false,
            "hasVideo": media.has_video,
            "hasAudio": media.has_audio,
            "width": media.width,
            "height": media.height,
        }]),
    )
}

fn fail(info: &str) -> String {
    message("fail", json!([{ "info": info }]))
}

/// Fuzz entry (feature `fuzzing`): decodes `text` as [`Session::on_text`] does, without a
/// session, and frames the replies it would make from the decoded fields. Returns the
/// replies; each must be valid JSON whatever the input.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_message(text: &str) -> Vec<String> {
    let Ok(incoming) = serde_json::from_str::<Incoming>(text) else {
        return vec![fail("Bad message")];
    };
    let first = incoming.data.into_iter().next().unwrap_or(Value::Null);
    let mut replies = vec![];
    if let Some(id) = first.get("mediaSessionId") {
        replies.push(message("availableStream", json!([{ "id": id }])));
    }
    if let Ok(req) = serde_json::from_value::<StreamRequest>(first) {
        replies.push(status(
            &req.media_session_id,
            &req.name,
            "FAILED",
            req.sdp.as_deref().unwrap_or(&incoming.message),
        ));
    }
    replies
}

/// True when a WebSocket error is the client's doing (it went away without a close frame,
/// its connection reset, it broke the protocol or a size limit): not the operator's
/// problem, so not worth a warning. Anything else is ours.
fn is_clients_doing(e: &axum::Error) -> bool {
    use tungstenite::Error as E;
    let source = std::error::Error::source(e).and_then(|s| s.downcast_ref::<E>());
    matches!(
        source,
        Some(
            E::ConnectionClosed
                | E::AlreadyClosed
                | E::Io(_)
                | E::Protocol(_)
                | E::Capacity(_)
                | E::Utf8(_)
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_gives_up_after_probes_unanswered_pings() {
        let mut k = KeepAlive::new(3);
        for _ in 0..3 {
            assert_eq!(k.ping_due(), PingDue::Send);
        }
        k.heard();
        for _ in 0..3 {
            assert_eq!(k.ping_due(), PingDue::Send);
        }
        assert_eq!(k.ping_due(), PingDue::GiveUp);
    }

    #[test]
    fn a_client_going_away_is_not_warned_about_but_our_errors_are() {
        use tungstenite::error::{CapacityError, ProtocolError};
        let reset = tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert!(is_clients_doing(&axum::Error::new(reset)));
        let gone = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(is_clients_doing(&axum::Error::new(tungstenite::Error::Io(
            gone
        ))));
        let big = CapacityError::MessageTooLong {
            size: 2,
            max_size: 1,
        };
        assert!(is_clients_doing(&axum::Error::new(
            tungstenite::Error::Capacity(big)
        )));
        let full = tungstenite::Error::WriteBufferFull(Box::new("x".into()));
        assert!(!is_clients_doing(&axum::Error::new(full)));
        assert!(!is_clients_doing(&axum::Error::new(std::io::Error::other(
            "ours"
        ))));
    }
}
