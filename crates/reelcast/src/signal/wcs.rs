//! The WCS WebSocket protocol, as the official `@flashphoner/websdk` speaks it.
//!
//! Every message both ways is `{"message": NAME, "data": [..]}`. The client opens with
//! `connection`, we answer `getUserData` (the session is ESTABLISHED). `playStream` carries
//! the browser's offer; we answer `setRemoteSDP` `[mediaSessionId, answer]` and then
//! `notifyStreamStatusEvent`s (PLAYING, STOPPED, FAILED with an info). Either side pings.
//! A message we do not know is logged and ignored; a message we cannot parse gets a `fail`
//! reply. Neither ends the session. Closing the socket stops the session's streams.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

use crate::hooks::Hook;
use crate::playback::{self, Playback, Requester};
use crate::server::ServerContext;
use crate::stream::registry::PlayKey;
use crate::stream::{Stopper, StreamStatus};

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
}

/// Frames a WCS message.
fn message(name: &str, data: Value) -> String {
    json!({ "message": name, "data": data }).to_string()
}

/// What a connection's stream tasks tell its socket loop.
enum Outgoing {
    Text(String),
    /// The play `key` (known to the client as media session id `.0`) has ended.
    Ended(String, PlayKey),
}

/// A play of this session, under the media session id the client gave it. The key tells
/// this play from an earlier one under the same id (the client may reuse ids): the end
/// of the earlier one must not forget the later one.
struct PlayingStream {
    key: PlayKey,
    stopper: Stopper,
}

/// The info of a session's streams when the session is closed for unanswered pings
/// (WCS's words), and the reason in the WebSocket close frame.
pub const KEEP_ALIVE_REASON: &str = "Terminated by keep-alive";

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
    Session::new(ctx).run(socket).instrument(span).await
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
    streams: HashMap<String, PlayingStream>,
    out_tx: mpsc::UnboundedSender<Outgoing>,
    out_rx: mpsc::UnboundedReceiver<Outgoing>,
}

impl Session {
    fn new(ctx: Arc<ServerContext>) -> Self {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        Session {
            ctx,
            session_id: uuid::Uuid::new_v4().to_string(),
            connection: None,
            refused: None,
            streams: HashMap::new(),
            out_tx,
            out_rx,
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
        let mut stop_reason = "Stopped by session disconnect";
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
                            // Oversized frames and protocol errors end up here.
                            warn!("websocket error: {e}");
                            break;
                        }
                    };
                    keep_alive.heard();
                    self.on_text(text.as_str()).await
                }
                Some(out) = self.out_rx.recv() => match out {
                    Outgoing::Text(text) => vec![text],
                    Outgoing::Ended(id, key) => {
                        if self.streams.get(&id).is_some_and(|s| s.key == key) {
                            self.streams.remove(&id);
                        }
                        continue;
                    }
                },
                _ = ping.tick() => {
                    if keep_alive.ping_due() == PingDue::GiveUp {
                        info!("no answer to {} pings in a row: closing", keep_alive.probes);
                        stop_reason = KEEP_ALIVE_REASON;
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
        for (_, stream) in self.streams.drain() {
            stream.stopper.stop(stop_reason);
        }
        info!("session closed");
    }

    /// Handles one text message, returning the immediate replies.
    async fn on_text(&mut self, text: &str) -> Vec<String> {
        let incoming: Incoming = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                warn!("unparseable message: {e}");
                return vec![fail(&format!("Bad message: {e}"))];
            }
        };
        let first = incoming.data.into_iter().next().unwrap_or(Value::Null);
        match incoming.message.as_str() {
            "connection" => self.connect(first).await,
            "ping" => vec![message("pong", json!([null]))],
            "pong" => vec![],
            "playStream" => match serde_json::from_value::<StreamRequest>(first.clone()) {
                Ok(req) => match self.ask_to_play(first).await {
                    Ok(()) => self.play(req).await,
                    Err(reason) => {
                        info!(stream = %req.name, "play refused by the application's backend: {reason}");
                        vec![status(&req.media_session_id, &req.name, "FAILED", &reason)]
                    }
                },
                Err(e) => vec![fail(&format!("Bad playStream: {e}"))],
            },
            "stopStream" | "unPublishStream" => {
                if let Ok(req) = serde_json::from_value::<StreamRequest>(first) {
                    if let Some(s) = self.streams.remove(&req.media_session_id) {
                        s.stopper.stop("Stopped by user");
                    }
                }
                vec![]
            }
            "publishStream" => {
                let req: Option<StreamRequest> = serde_json::from_value(first).ok();
                let (id, name) = req
                    .map(|r| (r.media_session_id, r.name))
                    .unwrap_or_default();
                vec![status(
                    &id,
                    &name,
                    "FAILED",
                    "Publishing is not supported by this server yet",
                )]
            }
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

    /// With REST hooks on: `/playStream` with the client's fields (less its SDP offer),
    /// this session's id and its `appKey`. Plays before `connection` are refused then.
    async fn ask_to_play(&self, fields: Value) -> Result<(), String> {
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
            .ask(Hook::PlayStream, Value::Object(asked))
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

    async fn play(&mut self, req: StreamRequest) -> Vec<String> {
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
        let Some(offer) = req.sdp.filter(|s| !s.is_empty()) else {
            return vec![status(&id, &name, "FAILED", "No SDP offer in playStream")];
        };
        let requester = Requester {
            media_session_id: &id,
            protocol: "wcs",
        };
        match playback::start(&self.ctx, &name, &offer, requester).await {
            Err(e) => {
                info!(stream = %name, "play refused: {e}");
                vec![status(&id, &name, "FAILED", &e.to_string())]
            }
            Ok(Playback {
                key,
                answer_sdp,
                stopper,
                mut statuses,
                info: media,
            }) => {
                self.streams
                    .insert(id.clone(), PlayingStream { key, stopper });
                let out = self.out_tx.clone();
                let (sid, sname) = (id.clone(), name.clone());
                tokio::spawn(async move {
                    while let Some(s) = statuses.recv().await {
                        let (code, info, last) = match &s {
                            StreamStatus::Playing => ("PLAYING", String::new(), false),
                            StreamStatus::Stopped(i) => ("STOPPED", i.clone(), true),
                            StreamStatus::Failed(i) => ("FAILED", i.clone(), true),
                        };
                        let mut text = status(&sid, &sname, code, &info);
                        if code == "PLAYING" {
                            text = status_with_media(&sid, &sname, code, &media);
                        }
                        let _ = out.send(Outgoing::Text(text));
                        if last {
                            let _ = out.send(Outgoing::Ended(sid.clone(), key));
                            break;
                        }
                    }
                });
                vec![message("setRemoteSDP", json!([id, answer_sdp]))]
            }
        }
    }
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

fn status_with_media(id: &str, name: &str, code: &str, media: &crate::stream::MediaInfo) -> String {
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
}
