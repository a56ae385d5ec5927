//! The report's text and JSON forms.

use super::*;

fn report(trigger: Trigger, error: Option<&str>) -> ExitReport {
    ExitReport {
        trigger,
        close: Closed {
            outcome: Ended::Closed(Outcome::Clean),
            close_notify_sent: true,
            close_notify_received: false,
            bytes_in: 1,
            bytes_out: 2,
            bytes_dropped: 0,
            close_duration: Duration::from_millis(3),
            error: error.map(str::to_string),
            alert: None,
        },
        end: None,
        close_duration: Duration::from_millis(4),
        duration: Duration::from_millis(5),
        exit_code: 130,
        session: None,
    }
}

#[test]
fn json_starts_with_trigger_and_end() {
    let mut r = report(Trigger::StdinEof, None);
    r.end = Some("quiet");
    assert!(
        r.to_json().starts_with(
            r#"{"trigger":"stdin-eof","end":"quiet","outcome":"clean","signal":null,"#
        ),
        "{}",
        r.to_json()
    );
}

#[test]
fn json_ends_with_the_session() {
    let j = report(Trigger::Error, None).to_json();
    assert!(j.ends_with(r#","session":null}"#), "{j}");
}

#[test]
fn json_names_the_signal_and_escapes_errors() {
    let j = report(Trigger::Signal(Signal::Int), Some("a \"b\"\n\u{1}")).to_json();
    assert!(j.contains(r#""signal":"SIGINT""#), "{j}");
    assert!(j.contains(r#""error":"a \"b\"\n\u0001""#), "{j}");
    assert!(j.contains(r#""exit_code":130"#), "{j}");
    assert!(!j.contains('\n'));
}

#[test]
fn text_is_one_line() {
    let t = report(Trigger::Escape, None).to_text();
    assert!(t.starts_with("gracetls: clean close after escape"), "{t}");
    assert!(!t.contains('\n'));
}

/// The time from the trigger and the TLS close's own (the `-v` line's) are each named.
#[test]
fn text_and_json_say_what_each_close_time_counts() {
    let mut r = report(Trigger::StdinEof, None);
    r.end = Some("quiet");
    r.close_duration = Duration::from_millis(2051);
    let t = r.to_text();
    assert!(
        t.contains("2051 ms from stdin-eof to exit, of which the TLS close 3 ms; total 5 ms"),
        "{t}"
    );
    let j = r.to_json();
    assert!(j.contains(r#""close_ms":2051,"tls_close_ms":3,"#), "{j}");
}

#[test]
fn signal_numbers_round_trip() {
    for s in [Signal::Int, Signal::Term, Signal::Hup, Signal::Quit] {
        assert_eq!(Signal::from_number(s.number()), Some(s));
    }
}
