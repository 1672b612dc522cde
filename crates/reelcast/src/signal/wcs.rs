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

use axum::extract::ws::{Message, WebSocket};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

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

/// Runs one WCS session on an upgraded WebSocket until it closes.
pub async fn serve_session(socket: WebSocket, ctx: Arc<ServerContext>, peer: String) {
    let span = tracing::info_span!("wcs", peer = %peer);
    Session::new(ctx).run(socket).instrument(span).await
}

struct Session {
    ctx: Arc<ServerContext>,
    streams: HashMap<String, PlayingStream>,
    out_tx: mpsc::UnboundedSender<Outgoing>,
    out_rx: mpsc::UnboundedReceiver<Outgoing>,
}

impl Session {
    fn new(ctx: Arc<ServerContext>) -> Self {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        Session {
            ctx,
            streams: HashMap::new(),
            out_tx,
            out_rx,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let mut ping = tokio::time::interval(self.ctx.settings.keep_alive_server_interval);
        ping.tick().await;
        info!("session opened");
        loop {
            tokio::select! {
                incoming = socket.recv() => {
                    let text = match incoming {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None => break,
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            // Oversized frames and protocol errors end up here.
                            warn!("websocket error: {e}");
                            break;
                        }
                    };
                    for reply in self.on_text(text.as_str()).await {
                        if socket.send(Message::Text(reply.into())).await.is_err() {
                            break;
                        }
                    }
                }
                Some(out) = self.out_rx.recv() => {
                    let text = match out {
                        Outgoing::Text(text) => text,
                        Outgoing::Ended(id, key) => {
                            if self.streams.get(&id).is_some_and(|s| s.key == key) {
                                self.streams.remove(&id);
                            }
                            continue;
                        }
                    };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                _ = ping.tick() => {
                    if socket.send(Message::Text(message("ping", json!([null])).into())).await.is_err() {
                        break;
                    }
                }
            }
        }
        for (_, stream) in self.streams.drain() {
            stream.stopper.stop("Stopped by session disconnect");
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
            "connection" => {
                let token = uuid::Uuid::new_v4().to_string();
                vec![message(
                    "getUserData",
                    json!([{ "authToken": token, "sessionId": token, "server": "reelcast" }]),
                )]
            }
            "ping" => vec![message("pong", json!([null]))],
            "pong" => vec![],
            "playStream" => match serde_json::from_value::<StreamRequest>(first) {
                Ok(req) => self.play(req).await,
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
