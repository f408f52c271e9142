//! What a client may send to steer its stream on a two-way transport:
//! `{"action": "pause" | "resume" | "stop"}`, one JSON text per message.

use serde::Deserialize;

/// A control message from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Control {
    /// Stop handing over chunks (nothing is made while paused).
    Pause,
    /// Hand over chunks again, from the next index.
    Resume,
    /// End the stream.
    Stop,
}

impl Control {
    /// The control message in `text`, or the error to answer it with: a JSON text
    /// `{"error": "…"}` that names the messages a client may send.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|err| {
            let error = format!(
                "invalid control message ({err}); send {{\"action\":\"pause\"}}, \
                 {{\"action\":\"resume\"}} or {{\"action\":\"stop\"}}"
            );
            serde_json::json!({ "error": error }).to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Control;

    #[test]
    fn the_three_actions_parse_and_anything_else_is_an_error_naming_them() {
        assert_eq!(Control::parse(r#"{"action":"pause"}"#), Ok(Control::Pause));
        assert_eq!(
            Control::parse(r#"{"action":"resume"}"#),
            Ok(Control::Resume)
        );
        assert_eq!(Control::parse(r#"{"action":"stop"}"#), Ok(Control::Stop));
        for bad in [
            "not json",
            r#"{"action":"jump"}"#,
            r#"{"verb":"stop"}"#,
            "[]",
            "",
        ] {
            let answer = Control::parse(bad).expect_err(bad);
            let json: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
            let error = json["error"].as_str().expect("an error field");
            assert!(error.contains(r#"{"action":"pause"}"#), "{bad}: {error}");
            assert_eq!(json.as_object().map(|o| o.len()), Some(1), "{bad}");
        }
    }
}
