//! The reader panel's data: a thread that polls PC/SC (never the UI thread) every
//! [`POLL_INTERVAL`], and reads a card's serial and lifecycle once when it appears (PIV
//! GET DATA through `station::interactive::inspect_card`). While an issuance holds the card
//! the poller only lists readers and does not connect to the card.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::worker::Waker;

pub const POLL_INTERVAL: Duration = Duration::from_millis(400);

/// One reader as the panel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderRow {
    pub reader: String,
    pub card_present: bool,
    /// "no card", "card 2C000001 BLANK", "card present (busy: issuing)", or the read error.
    pub state: String,
}

/// What the panel draws: the rows, or why PC/SC could not be asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderSnapshot {
    pub rows: Vec<ReaderRow>,
    pub error: Option<String>,
    /// At least one poll finished.
    pub polled: bool,
}

/// Handle on the polling thread; the thread stops when this is dropped.
pub struct ReaderPoller {
    pub shared: Arc<Mutex<ReaderSnapshot>>,
    /// Set while an issuance owns the card: no connects to cards.
    pub busy: Arc<AtomicBool>,
    /// Bumped when the station changed a card (an issuance ended): every card is read again.
    pub generation: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for ReaderPoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl ReaderPoller {
    pub fn spawn(waker: Waker, only: Option<String>) -> ReaderPoller {
        let shared = Arc::new(Mutex::new(ReaderSnapshot::default()));
        let busy = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (s, b, st, g) = (
            shared.clone(),
            busy.clone(),
            stop.clone(),
            generation.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("reader-poller".into())
            .spawn(move || poll_loop(&s, &b, &g, &st, &waker, only.as_deref()));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the reader poller");
        }
        ReaderPoller {
            shared,
            busy,
            generation,
            stop,
        }
    }

    pub fn snapshot(&self) -> ReaderSnapshot {
        self.shared.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

fn poll_loop(
    shared: &Mutex<ReaderSnapshot>,
    busy: &AtomicBool,
    generation: &AtomicU64,
    stop: &AtomicBool,
    waker: &Waker,
    only: Option<&str>,
) {
    // (reader, ATR) -> state text, so a card is inspected once per insertion.
    let mut known: Vec<(String, Vec<u8>, String)> = Vec::new();
    let mut seen_generation = 0;
    while !stop.load(Ordering::Relaxed) {
        let is_busy = busy.load(Ordering::Relaxed);
        let g = generation.load(Ordering::Relaxed);
        if g != seen_generation {
            // An issuance changed a card's lifecycle: read the cards again.
            known.clear();
            seen_generation = g;
        }
        let next = match station::interactive::readers() {
            Ok(readers) => {
                let mut rows = Vec::new();
                for r in readers {
                    if only.is_some_and(|o| !r.reader.contains(o)) {
                        continue;
                    }
                    let state = if !r.card_present {
                        "no card".to_string()
                    } else if let Some((_, _, s)) = known
                        .iter()
                        .find(|(n, atr, _)| *n == r.reader && *atr == r.atr)
                    {
                        s.clone()
                    } else if is_busy {
                        "card present (station is working on a card)".to_string()
                    } else {
                        match station::interactive::inspect_card(&r.reader) {
                            Ok(s) => {
                                known.retain(|(n, _, _)| *n != r.reader);
                                known.push((r.reader.clone(), r.atr.clone(), s.clone()));
                                s
                            }
                            // Not cached: asked again at the next poll (a card still powering
                            // up, or one another program holds in a transaction).
                            Err(e) => format!("card present, not readable: {e}"),
                        }
                    };
                    if !r.card_present {
                        known.retain(|(n, _, _)| *n != r.reader);
                    }
                    rows.push(ReaderRow {
                        reader: r.reader,
                        card_present: r.card_present,
                        state,
                    });
                }
                ReaderSnapshot {
                    rows,
                    error: None,
                    polled: true,
                }
            }
            Err(e) => ReaderSnapshot {
                rows: Vec::new(),
                error: Some(e.to_string()),
                polled: true,
            },
        };
        if let Ok(mut g) = shared.lock() {
            if *g != next {
                *g = next;
                waker.wake();
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
