//! An exhaustive check of the outbound queue's protocol: a small model of a writer, a reader
//! and a single-threaded server joined by two socket buffers of one record each, explored in
//! every interleaving of their steps. A state where nothing can move and the exchange is not
//! over is a deadlock. The steps mirror `Outbound`: a writer sends its record itself when the
//! queue is idle (`send_direct`) and queues it otherwise, then flushes to its mark, and a
//! flusher empties the queue before it gives up the role; the reader offers TLS's answers
//! with a send that never waits and offers again whatever nobody writes while it waits to
//! read. The server checks that data arrives in the order it was made. The same model with
//! the reader of old (a blocking flush of everything before its answer) or a flusher that
//! stops at its own mark finds the two stalls seen on real servers, so the check can fail.

use std::collections::{HashSet, VecDeque};

/// A record on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Unit {
    /// The writer's data, numbered.
    Data(u8),
    /// The reader's answer to the server (a KeyUpdate reply, a ClientHello).
    Answer,
    /// The server's echo of a data record.
    Echo,
    /// The server's KeyUpdate: the client answers, the server does not wait for it.
    KeyUpdate,
    /// The server's HelloRequest: the client answers, the server waits for it, and the
    /// writer cannot encrypt until then.
    HelloRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Writer {
    Push(u8),
    Flush { id: u8, flusher: bool },
    Writing { id: u8 },
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Reader {
    Read,
    /// Offers its answer (the protocol now, or the old blocking flush).
    Answer {
        flusher: bool,
    },
    Writing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Server {
    Read,
    WriteEcho,
    WriteControl,
    /// Waiting for the client's answer to a HelloRequest.
    AwaitAnswer,
}

#[derive(Debug, Clone, Copy)]
struct Rules {
    /// The reader writes its answer with a blocking flush of the whole queue (before).
    reader_blocks: bool,
    /// A flusher stops at its own mark (before a734a49).
    flusher_stops_at_mark: bool,
    /// The server's control record after each echo.
    control: Unit,
    /// The writer sends its record itself, with a send that never waits, when the queue is
    /// idle (`Outbound::send_direct`), and queues it otherwise.
    writer_sends: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    up: VecDeque<Unit>,
    down: VecDeque<Unit>,
    queue: Vec<Unit>,
    batch: Vec<Unit>,
    flushing: bool,
    /// The writer's encryption waits for the renegotiation to finish.
    renegotiating: bool,
    writer: Writer,
    reader: Reader,
    server: Server,
    received: u8,
    echoed: u8,
    /// Data records the server read and has not echoed yet.
    owed: u8,
    /// Data records the server read: they must arrive in the order they were made.
    arrived: u8,
}

const RECORDS: u8 = 3;
const BUFFER: usize = 1;

impl State {
    fn start() -> State {
        State {
            up: VecDeque::new(),
            down: VecDeque::new(),
            queue: Vec::new(),
            batch: Vec::new(),
            flushing: false,
            renegotiating: false,
            writer: Writer::Push(0),
            reader: Reader::Read,
            server: Server::Read,
            received: 0,
            echoed: 0,
            owed: 0,
            arrived: 0,
        }
    }

    fn done(&self) -> bool {
        self.writer == Writer::Done && self.received == RECORDS && self.echoed == RECORDS
    }

    fn written(&self, unit: Unit) -> bool {
        !self.queue.contains(&unit) && !self.batch.contains(&unit)
    }

    /// Writes what the socket takes now, never waiting (`Outbound::try_flush`).
    fn offer(&mut self) {
        while self.up.len() < BUFFER && !self.queue.is_empty() {
            let unit = self.queue.remove(0);
            self.up.push_back(unit);
        }
    }

    /// One step of the thread writing the batch: one unit onto the socket while it has room,
    /// or, the batch written, the end of that thread's turn as flusher (`done` says where the
    /// thread goes next).
    fn batch_step(&self, mut s: State, done: impl FnOnce(&mut State), out: &mut Vec<State>) {
        if self.batch.is_empty() {
            s.flushing = false;
            done(&mut s);
            out.push(s);
        } else if self.up.len() < BUFFER {
            let unit = s.batch.remove(0);
            s.up.push_back(unit);
            out.push(s);
        }
    }

    /// Every state one step of one party leads to.
    fn next(&self, rules: Rules) -> Vec<State> {
        let mut out = Vec::new();
        // The writer.
        let mut s = self.clone();
        match self.writer {
            Writer::Push(id) if !self.renegotiating => {
                let idle = !self.flushing && self.queue.is_empty();
                if rules.writer_sends && idle && self.up.len() < BUFFER {
                    s.up.push_back(Unit::Data(id));
                } else {
                    s.queue.push(Unit::Data(id));
                }
                s.writer = Writer::Flush { id, flusher: false };
                out.push(s);
            }
            Writer::Push(_) | Writer::Done => {}
            Writer::Flush { id, flusher } => {
                let emptied = !flusher || rules.flusher_stops_at_mark || self.queue.is_empty();
                if self.written(Unit::Data(id)) && emptied {
                    s.writer = if id + 1 < RECORDS {
                        Writer::Push(id + 1)
                    } else {
                        Writer::Done
                    };
                    out.push(s);
                } else if !self.flushing {
                    s.flushing = true;
                    s.batch = std::mem::take(&mut s.queue);
                    s.writer = Writer::Writing { id };
                    out.push(s);
                }
            }
            Writer::Writing { id } => {
                self.batch_step(
                    s,
                    |s| s.writer = Writer::Flush { id, flusher: true },
                    &mut out,
                );
            }
        }
        // The reader.
        let mut s = self.clone();
        match self.reader {
            Reader::Read => {
                if let Some(unit) = s.down.pop_front() {
                    match unit {
                        Unit::Echo => s.received += 1,
                        Unit::KeyUpdate | Unit::HelloRequest => {
                            s.renegotiating |= unit == Unit::HelloRequest;
                            s.queue.push(Unit::Answer);
                            s.reader = Reader::Answer { flusher: false };
                        }
                        other => unreachable!("{other:?} travels up"),
                    }
                    out.push(s);
                } else if !rules.reader_blocks && !self.flushing && !self.queue.is_empty() {
                    // Waiting to read, it offers again what nobody writes.
                    let before = s.up.len();
                    s.offer();
                    if s.up.len() != before {
                        out.push(s);
                    }
                }
            }
            Reader::Answer { flusher } if rules.reader_blocks => {
                // flush_to(mark, wait false) of old: the flusher role, blocking writes.
                let emptied = !flusher || rules.flusher_stops_at_mark || self.queue.is_empty();
                if (self.written(Unit::Answer) && emptied) || (self.flushing && !flusher) {
                    s.reader = Reader::Read;
                    out.push(s);
                } else if !self.flushing {
                    s.flushing = true;
                    s.batch = std::mem::take(&mut s.queue);
                    s.reader = Reader::Writing;
                    out.push(s);
                }
            }
            Reader::Answer { .. } => {
                if !self.flushing {
                    s.offer();
                }
                s.reader = Reader::Read;
                out.push(s);
            }
            Reader::Writing => {
                self.batch_step(s, |s| s.reader = Reader::Answer { flusher: true }, &mut out);
            }
        }
        // The server: read a record, echo data, then send its control record.
        let mut s = self.clone();
        match self.server {
            Server::Read if self.owed > 0 => {
                s.server = Server::WriteEcho;
                out.push(s);
            }
            Server::Read | Server::AwaitAnswer => {
                if let Some(unit) = s.up.pop_front() {
                    match unit {
                        Unit::Data(id) => {
                            assert_eq!(id, s.arrived, "data out of order");
                            s.arrived += 1;
                            s.owed += 1;
                        }
                        Unit::Answer => {
                            if self.server == Server::AwaitAnswer {
                                s.renegotiating = false;
                                s.server = Server::Read;
                            }
                        }
                        other => unreachable!("{other:?} travels down"),
                    }
                    out.push(s);
                }
            }
            Server::WriteEcho | Server::WriteControl => {
                if self.down.len() < BUFFER {
                    if self.server == Server::WriteEcho {
                        s.down.push_back(Unit::Echo);
                        s.echoed += 1;
                        s.owed -= 1;
                        s.server = Server::WriteControl;
                    } else {
                        s.down.push_back(rules.control);
                        s.server = if rules.control == Unit::HelloRequest {
                            Server::AwaitAnswer
                        } else {
                            Server::Read
                        };
                    }
                    out.push(s);
                }
            }
        }
        out
    }
}

/// Explores every interleaving; returns a reachable state where nothing moves and the
/// exchange is not over, if there is one.
fn find_stall(rules: Rules) -> Option<State> {
    let mut seen = HashSet::new();
    let mut todo = vec![State::start()];
    while let Some(state) = todo.pop() {
        if !seen.insert(state.clone()) {
            continue;
        }
        let next = state.next(rules);
        if next.is_empty() && !state.done() {
            return Some(state);
        }
        todo.extend(next);
    }
    assert!(
        seen.len() > 100,
        "the model explored only {} states",
        seen.len()
    );
    None
}

#[test]
fn key_updates_never_stall_the_queue() {
    let now = Rules {
        reader_blocks: false,
        flusher_stops_at_mark: false,
        control: Unit::KeyUpdate,
        writer_sends: true,
    };
    assert_eq!(find_stall(now), None);
    let queued = Rules {
        writer_sends: false,
        ..now
    };
    assert_eq!(find_stall(queued), None);
    // The reader of old, flushing the writer's data before its answer: the deadlock.
    let stall = find_stall(Rules {
        reader_blocks: true,
        ..now
    });
    assert!(stall.is_some(), "the model misses the KeyUpdate deadlock");
}

#[test]
fn renegotiations_never_stall_the_queue() {
    let now = Rules {
        reader_blocks: false,
        flusher_stops_at_mark: false,
        control: Unit::HelloRequest,
        writer_sends: true,
    };
    assert_eq!(find_stall(now), None);
    let queued = Rules {
        writer_sends: false,
        ..now
    };
    assert_eq!(find_stall(queued), None);
    // A flusher that stops at its own mark, with the reader of old: the ClientHello stays
    // queued (the stall a734a49 fixed).
    let stall = find_stall(Rules {
        reader_blocks: true,
        flusher_stops_at_mark: true,
        ..now
    });
    assert!(stall.is_some(), "the model misses the renegotiation stall");
}
