//! The station worker: one thread that owns the opened [`station::Station`] (HSM session,
//! registry file, PC/SC during an issuance) and runs every command the UI sends over a
//! channel. The UI thread never touches the card, the HSM or the database; it reads the
//! [`Event`]s back each frame and asks egui to repaint when one arrives.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use station::audit::{ExportOutcome, Range, VerifyLogOutcome, VerifyOutcome};
use station::ca_admin::CrlReport;
use station::centre::outbox::{OutboxList, OutboxMessage};
use station::error::StationError;
use station::hierarchy::CaSummary;
use station::holder::ValidHolder;
use station::interactive::{self, HolderLookup, SpoiledNumber};
use station::issuance::{IssueInput, IssueReport, JobProgress};
use station::journal::JobStep;
use station::operators::Session;
use station::records::{DocumentView, HolderView, RevokeReport};
use station::rotation::{Approval, ReissueItem, RequestView};
use station::services::ReplaceReport;
use station::DocumentProfile;
use station::Station;
use station::{AuditEvent, ExportFormat, Role};
use zeroize::Zeroizing;

use crate::error::{self as gerr, Shown};
use crate::i18n::{self, tr, tr_args, Lang};

/// What the UI asks the station to do. Secrets travel in zeroizing buffers.
pub enum Command {
    Login {
        name: String,
        password: Zeroizing<String>,
        /// The language the operator chose on the log-in screen, to remember for them.
        language: Option<String>,
        /// The log-in screen's language (the worker's messages until the operator's own).
        lang: Lang,
    },
    Logout {
        reason: &'static str,
    },
    LookupHolder {
        pinfl: String,
    },
    LookupDocument {
        number: String,
    },
    Issue {
        holder: Box<ValidHolder>,
        reader: Option<String>,
        pin: Zeroizing<String>,
        pin_letter: std::path::PathBuf,
        /// The clerk confirmed a registered holder's changed data.
        update_holder: bool,
    },
    RevokeDocument {
        number: String,
        reason: String,
    },
    /// Replace the holder's active document `document` for `reason` (lost, stolen, damaged,
    /// name-change): the new card issued as [`Command::Issue`] does.
    Replace {
        document: String,
        reason: String,
        holder: Box<ValidHolder>,
        reader: Option<String>,
        pin: Zeroizing<String>,
        pin_letter: std::path::PathBuf,
        update_holder: bool,
    },
    CaSummaries,
    PublishCrl,
    RevokeCertificate {
        serial: String,
        reason: String,
    },
    /// Rotation requests and the re-issuance list.
    CaRequests,
    /// File a rotation request for CA `ca` (`esign`, `root`, `document-signer`).
    RequestRotation {
        ca: String,
        /// Why, in the requester's words (kept with the request).
        note: Option<String>,
    },
    /// An enrolled station's next Document Signer, certified by the centre's CSCA.
    RenewDocumentSigner,
    ApproveRequest {
        id: i64,
    },
    RefuseRequest {
        id: i64,
    },
    AuditEvents,
    VerifyLog,
    Export {
        dir: PathBuf,
        range: Range,
        format: ExportFormat,
    },
    VerifyExport {
        dir: PathBuf,
        root: Option<PathBuf>,
    },
    /// The clerk's Card services workspace (`service_work`).
    Service(crate::service_work::Request),
    /// The national centre's e-government outbox: the dead letters, or every message
    /// (`crate::deliveries`; ca-admin or auditor).
    CentreOutbox {
        failed_only: bool,
    },
    /// The office's cards the centre flagged for replacement (`crate::to_replace`; any role
    /// on an enrolled station, the clerk's tab).
    CardsToReplace,
    /// Send the centre's dead letter `id` again (ca-admin).
    RetryCentreOutbox {
        id: i64,
    },
    /// Bring the registry up to date with what other offices changed at the centre
    /// (`crate::centre_sync`; clerk or ca-admin on an enrolled station).
    SyncWithCentre,
    /// Back the registry up into the new file `out` (the CA workspace's backup; ca-admin).
    Backup {
        out: PathBuf,
    },
}

/// Who is logged in, as the UI needs to know it (no password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub operator: String,
    pub role: Role,
    /// The document profile (its PINFL check-digit rule, for validation as you type).
    pub document: DocumentProfile,
    /// The series of the office's current number block (for the MRZ preview), if any.
    pub series: Option<String>,
    /// The expiry a document issued today gets (document profile).
    pub expiry: time::Date,
    /// The operator's interface language: chosen at this log-in, or remembered from an
    /// earlier one (`station::preferences`).
    pub language: Option<String>,
    /// The station is enrolled with a national centre (station.toml `[centre]`).
    pub centre: bool,
    /// This station's name (station.toml `[station] name`).
    pub station: String,
    /// The active Document Signer's key usage at log-in: its end (RFC 3339) and the whole days
    /// left (negative once ended), when its certificate states one.
    pub document_signer: Option<(String, i64)>,
    /// How often the registry is brought up to date with the centre while this operator is
    /// logged in (station.toml `[centre] sync_every_seconds`): `None` on a standalone station,
    /// for an auditor, or with the automatic sync off.
    pub centre_sync: Option<Duration>,
}

/// One step of an issuance as the progress view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub step: JobStep,
    /// "3/12 write certificate 9C" inside card steps.
    pub card_step: Option<String>,
}

impl From<&JobProgress> for StepReport {
    fn from(p: &JobProgress) -> Self {
        StepReport {
            step: p.step,
            card_step: p
                .card
                .as_ref()
                .map(|c| format!("{}/{} {}", c.index, c.total, c.step)),
        }
    }
}

/// A failed command in words for the operator: what happened and what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    pub message: String,
    pub next: String,
    /// The same action may simply be repeated (card pulled, reader busy):
    /// [`crate::error::retry_can_succeed`] decides it.
    pub retry: bool,
    /// The station's technical text, for a "Details" expander (`crate::error::details_ui`).
    pub details: String,
    /// The holder is registered with other personal data: what differs (registered → entered),
    /// for the clerk to confirm against the holder's documents.
    pub holder_changes: Vec<station::holder_update::FieldChange>,
    /// The holder is registered (here, or in the national registry) with other personal data:
    /// the clerk may confirm the update against the holder's documents and issue.
    pub confirm_update: bool,
}

/// What comes back from the worker.
pub enum Event {
    LoggedIn(SessionInfo),
    LoginFailed(String),
    LoggedOut,
    Holder(Result<Option<Box<HolderLookup>>, Shown>),
    Document(Result<Box<(HolderView, DocumentView)>, Shown>),
    /// The number looked up is on no document: it was spoiled in an issuance.
    SpoiledNumber(Box<SpoiledNumber>),
    /// A document this enrolled station did not issue, as the national registry has it (a
    /// holder may declare a card lost at any office).
    DocumentElsewhere(Box<centre_api::CardAtCentre>),
    Replaced(Result<Box<ReplaceReport>, Failure>),
    IssueStep(StepReport),
    Issued(Result<Box<IssueReport>, Failure>),
    DocumentRevoked(Result<RevokeReport, Shown>),
    CaSummaries(Result<Vec<CaSummary>, Shown>),
    CrlPublished(Result<Vec<CrlReport>, Shown>),
    CertificateRevoked(Result<String, Shown>),
    CaRequests(Result<Box<RotationLists>, Shown>),
    /// The outcome of a request, approve or refuse, in plain words.
    CaRequestDone(Result<String, Shown>),
    AuditEvents(Result<Vec<AuditEvent>, Shown>),
    LogVerified(Result<VerifyLogOutcome, Shown>),
    Exported(Result<Box<ExportOutcome>, Shown>),
    ExportVerified(Result<Box<VerifyOutcome>, Shown>),
    /// The Card services workspace's replies.
    Service(crate::service_work::Reply),
    CentreOutbox(Result<OutboxList, Shown>),
    CentreOutboxRetried(Result<OutboxMessage, Shown>),
    CardsToReplace(Result<station::centre::to_replace::CardsToReplace, Shown>),
    CentreSynced(Result<station::services::mirror::SyncReport, Shown>),
    BackedUp(Result<Box<station::backup::BackupReport>, Shown>),
}

/// The CA-admin's rotation view: every request (newest first) and the re-issuance list.
#[derive(Debug, Clone)]
pub struct RotationLists {
    pub requests: Vec<RequestView>,
    pub reissue: Vec<ReissueItem>,
}

/// A rotation result in plain words, in `lang`.
fn approval_text(lang: Lang, a: &Approval) -> String {
    let id = ("id", i18n::s(a.request.id.to_string()));
    match &a.executed {
        // An operator request (operator-add, -enable, -role): `key` says what it did.
        Some(x) if station::rotation::OPERATOR_KINDS.contains(&x.kind.as_str()) => tr_args(
            lang,
            "ca-approved-operator",
            &[id, ("what", i18n::s(x.key.as_str()))],
        ),
        Some(x) => tr_args(
            lang,
            match &x.old_key {
                Some(_) => "ca-approved-replacing",
                None => "ca-approved-key",
            },
            &[
                id,
                ("ca", i18n::s(x.ca.as_str())),
                ("key", i18n::s(x.key.as_str())),
                ("old", i18n::s(x.old_key.clone().unwrap_or_default())),
                ("count", i18n::n(x.reissue_required as f64)),
            ],
        ),
        None => tr_args(
            lang,
            "ca-approved-waiting",
            &[
                id,
                ("approvals", i18n::n(a.request.approvals.len() as f64)),
                ("quorum", i18n::n(a.request.quorum as f64)),
            ],
        ),
    }
}

/// Wakes the UI when an event arrives (set once the first frame has a context).
#[derive(Clone, Default)]
pub struct Waker(Arc<Mutex<Option<egui::Context>>>);

impl Waker {
    pub fn set(&self, ctx: &egui::Context) {
        if let Ok(mut g) = self.0.lock() {
            if g.is_none() {
                *g = Some(ctx.clone());
            }
        }
    }

    pub fn wake(&self) {
        if let Ok(g) = self.0.lock() {
            if let Some(ctx) = g.as_ref() {
                ctx.request_repaint();
            }
        }
    }
}

/// The UI's handle on the worker thread.
pub struct Worker {
    /// `None` only while dropping.
    tx: Option<Sender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
    rx: Receiver<Event>,
    pub waker: Waker,
}

impl Worker {
    /// Start the worker on `data_dir`; the station is opened on the worker thread at the
    /// first log-in (so a missing HSM PIN is a log-in error, not a crash).
    pub fn spawn(data_dir: PathBuf) -> Worker {
        let (tx, cmd_rx) = mpsc::channel::<Command>();
        let (ev_tx, rx) = mpsc::channel::<Event>();
        let waker = Waker::default();
        let w = waker.clone();
        let spawned = std::thread::Builder::new()
            .name("station-worker".into())
            .spawn(move || {
                let mut state = WorkerState {
                    data_dir,
                    station: None,
                    session: None,
                    lang: Lang::default(),
                };
                for cmd in cmd_rx {
                    let send = |e: Event| {
                        let _ = ev_tx.send(e);
                        w.wake();
                    };
                    state.run(cmd, &send);
                }
            });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the station worker thread");
                None
            }
        };
        Worker {
            tx: Some(tx),
            thread,
            rx,
            waker,
        }
    }

    /// Send a command; `false` when the worker is gone.
    pub fn send(&self, cmd: Command) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(cmd).is_ok())
    }

    /// Events that arrived since the last call.
    /// (The worker ends when the UI's handle is dropped; see `Drop`.)
    pub fn poll(&self) -> Vec<Event> {
        self.rx.try_iter().collect()
    }
}

struct WorkerState {
    data_dir: PathBuf,
    station: Option<Station>,
    session: Option<Session>,
    /// The logged-in operator's interface language (the worker's own messages).
    lang: Lang,
}

fn text(e: StationError) -> String {
    e.to_string()
}

/// Plain words and the next step for a failed issuance, in `lang`. Whether Retry is offered
/// is [`gerr::retry_can_succeed`]'s decision.
pub fn explain_issue_error(lang: Lang, e: &StationError) -> Failure {
    let plain = gerr::shown(lang, e);
    let words = |id: &str, next: &str| (tr(lang, id), tr(lang, next));
    let (message, next) = match e {
        StationError::Card { message, .. } if message.contains("removed") => {
            words("issue-card-removed", "issue-card-removed-next")
        }
        StationError::Card { message, .. } if message.contains("no card") => {
            words("issue-no-card", "issue-no-card-next")
        }
        StationError::Card { .. } => words("issue-card-failed", "issue-card-failed-next"),
        StationError::Hsm(_) => words("issue-hsm-failed", "issue-hsm-failed-next"),
        StationError::HolderDiffers { .. } => {
            words("issue-holder-differs", "issue-holder-differs-next")
        }
        e if centre_holder_differs(e) => words(
            "issue-holder-differs-centre",
            "issue-holder-differs-centre-next",
        ),
        // Only a replacement names `reason`, and the desk offers only reasons it knows: a
        // recall the centre did not flag (or cannot confirm).
        StationError::Invalid { field, .. } if field == "reason" => {
            words("replace-recalled-refused", "replace-recalled-refused-next")
        }
        StationError::Conflict(_) => (plain.message, tr(lang, "issue-conflict-next")),
        StationError::Invalid { .. } => (plain.message, tr(lang, "issue-invalid-next")),
        _ => (plain.message, plain.next),
    };
    let holder_changes = match e {
        StationError::HolderDiffers { changes, .. } => changes.clone(),
        _ => Vec::new(),
    };
    Failure {
        message,
        next,
        retry: plain.retry,
        holder_changes,
        confirm_update: matches!(e, StationError::HolderDiffers { .. }) || centre_holder_differs(e),
        details: plain.details,
    }
}

/// The national centre refused the reservation because it has the holder with other data
/// (`holder-data-differs`): the fields are in its sentence, its registered values are not sent.
fn centre_holder_differs(e: &StationError) -> bool {
    matches!(e, StationError::CentreRefused { refusal, .. }
        if refusal.rule == centre_api::rules::HOLDER_DATA_DIFFERS)
}

impl WorkerState {
    fn station(&mut self) -> Result<&mut Station, String> {
        if self.station.is_none() {
            self.station = Some(Station::open(&self.data_dir).map_err(text)?);
        }
        self.station
            .as_mut()
            .ok_or_else(|| "station not open".into())
    }

    fn run(&mut self, cmd: Command, send: &dyn Fn(Event)) {
        if let Command::Login {
            name,
            password,
            language,
            lang,
        } = cmd
        {
            self.lang = lang;
            self.log_in(&name, &password, language, send);
            return;
        }
        let lang = self.lang;
        let Some(session) = self.session.clone() else {
            tracing::warn!("command without a logged-in operator ignored");
            return;
        };
        let Some(st) = self.station.as_mut() else {
            return;
        };
        match cmd {
            Command::Login { .. } => {}
            Command::Logout { reason } => {
                if let Err(e) = interactive::logout(st, &session, reason) {
                    tracing::error!(error = %e, "could not audit a log-out");
                }
                self.session = None;
                send(Event::LoggedOut);
            }
            c @ (Command::LookupHolder { .. }
            | Command::LookupDocument { .. }
            | Command::Issue { .. }
            | Command::Replace { .. }
            | Command::RevokeDocument { .. }) => clerk(st, &session, lang, c, send),
            c @ (Command::AuditEvents
            | Command::VerifyLog
            | Command::Export { .. }
            | Command::VerifyExport { .. }) => {
                auditor(st, &session, (&self.data_dir, lang), c, send)
            }
            c @ (Command::CaSummaries
            | Command::PublishCrl
            | Command::RevokeCertificate { .. }
            | Command::CaRequests
            | Command::RequestRotation { .. }
            | Command::RenewDocumentSigner
            | Command::ApproveRequest { .. }
            | Command::RefuseRequest { .. }) => ca_admin(st, &session, lang, c, send),
            Command::Service(r) => crate::service_work::run(st, &session, lang, r, &|reply| {
                send(Event::Service(reply))
            }),
            Command::CentreOutbox { failed_only } => send(Event::CentreOutbox(
                station::centre::outbox::list(st, &session, failed_only, None).map_err(shown(lang)),
            )),
            Command::CardsToReplace => send(Event::CardsToReplace(
                station::centre::to_replace::list(st, &session).map_err(shown(lang)),
            )),
            Command::RetryCentreOutbox { id } => send(Event::CentreOutboxRetried(
                station::centre::outbox::retry(st, &session, id).map_err(shown(lang)),
            )),
            Command::SyncWithCentre => send(Event::CentreSynced(
                station::services::mirror::sync(st, &session).map_err(shown(lang)),
            )),
            Command::Backup { out } => send(Event::BackedUp(
                backup(st, &session, &out).map_err(shown(lang)),
            )),
        }
    }

    /// Log in (audited), then load what the clerk's form needs from the document profile and
    /// the office's number block.
    fn log_in(
        &mut self,
        name: &str,
        password: &Zeroizing<String>,
        chosen: Option<String>,
        send: &dyn Fn(Event),
    ) {
        let r = self.station().and_then(|st| {
            let s = interactive::login(st, name, password).map_err(text)?;
            let doc = st.document_profile().map_err(text)?.clone();
            let series = st
                .registry
                .number_blocks(&st.config.station.office)
                .ok()
                .and_then(|b| b.into_iter().find(|b| b.next <= b.last))
                .map(|b| b.series);
            let expiry = doc.expiry(station::time_util::today_utc());
            // What the clerk is told about the Document Signer: a failure to read it is no
            // reason to refuse the log-in (the issuance checks it again).
            let ds = station::centre::status::document_signer(st)
                .ok()
                .flatten()
                .and_then(|d| Some((d.key_usage_until?, d.days_left?)));
            let station = st.config.station.name.clone();
            let sync = st
                .config
                .centre
                .as_ref()
                .and_then(|c| c.sync_every())
                .filter(|_| station::services::mirror::ROLES.contains(&s.role()));
            Ok((
                s,
                doc,
                series,
                expiry,
                (st.config.centre.is_some(), ds, station, sync),
            ))
        });
        match r {
            Ok((s, document, series, expiry, (centre, document_signer, station, centre_sync))) => {
                // The language chosen now is remembered for this operator; without a choice,
                // the one remembered applies.
                let language = match chosen {
                    Some(tag) => {
                        if let Err(e) =
                            station::preferences::set_language(&self.data_dir, s.operator(), &tag)
                        {
                            tracing::warn!(error = %e, "could not remember the operator's language");
                        }
                        Some(tag)
                    }
                    None => station::preferences::language(&self.data_dir, s.operator()),
                };
                if let Some(l) = language.as_deref().and_then(Lang::from_tag) {
                    self.lang = l;
                }
                send(Event::LoggedIn(SessionInfo {
                    language,
                    operator: s.operator().to_owned(),
                    role: s.role(),
                    document,
                    series,
                    expiry,
                    centre,
                    station,
                    document_signer,
                    centre_sync,
                }));
                self.session = Some(s);
            }
            Err(e) => send(Event::LoginFailed(e)),
        }
    }
}

/// `idstation backup create` with the data dir's root certificate as the audit key's anchor.
fn backup(
    st: &mut Station,
    session: &Session,
    out: &Path,
) -> Result<Box<station::backup::BackupReport>, StationError> {
    let root = station::audit::root_file(None, &st.layout.root)?;
    let trust = station::audit::TrustInputs {
        crls: Vec::new(),
        previous: None,
    };
    station::backup::create(st, session, out, &root, &trust).map(Box::new)
}

/// Before every action: the account is still enabled, unlocked and of the same role, and the
/// role may do it; refusals are audited like the CLI's.
fn need(
    st: &mut Station,
    session: &Session,
    roles: &[Role],
    action: &str,
) -> Result<(), StationError> {
    interactive::require(st, session, action, roles)
}

/// A station error in plain words with its details (look-ups, the CA and audit workspaces).
fn shown(lang: Lang) -> impl Fn(StationError) -> Shown {
    move |e| gerr::shown(lang, &e)
}

/// The clerk's commands: look-ups, issuance, revocation of a document.
fn clerk(st: &mut Station, session: &Session, lang: Lang, cmd: Command, send: &dyn Fn(Event)) {
    match cmd {
        Command::LookupHolder { pinfl } => send(Event::Holder(
            need(st, session, &[Role::Clerk], "look up holders")
                .and_then(|_| interactive::look_up_holder(st, session, pinfl.trim()))
                .map(|h| h.map(Box::new))
                .map_err(shown(lang)),
        )),
        Command::LookupDocument { number } => {
            let shown = shown(lang);
            let r = need(st, session, &[Role::Clerk], "look up documents")
                .map_err(&shown)
                .and_then(
                    |_| match station::records::show_document(st, session, number.trim()) {
                        Ok(found) => Ok(Ok(Box::new(found))),
                        // No document: a spoiled number is said so; on an enrolled station
                        // another office's document is the centre's.
                        Err(e @ StationError::NotFound(_)) => {
                            match interactive::spoiled_number(st, session, &number)
                                .map_err(&shown)?
                            {
                                Some(s) => Ok(Err(Ok(Box::new(s)))),
                                None if st.config.centre.is_some() => {
                                    station::services::document_at_centre(
                                        st,
                                        session,
                                        number.trim(),
                                    )
                                    .map(|found| Err(Err(Box::new(found))))
                                    .map_err(&shown)
                                }
                                None => Err(shown(e)),
                            }
                        }
                        Err(e) => Err(shown(e)),
                    },
                );
            send(match r {
                Ok(Err(Ok(spoiled))) => Event::SpoiledNumber(spoiled),
                Ok(Err(Err(found))) => Event::DocumentElsewhere(found),
                Ok(Ok(found)) => Event::Document(Ok(found)),
                Err(e) => Event::Document(Err(e)),
            })
        }
        Command::Issue {
            holder,
            reader,
            pin,
            pin_letter,
            update_holder,
        } => {
            let r = match need(st, session, &[Role::Clerk], "issue cards") {
                Err(e) => Err(explain_issue_error(lang, &e)),
                Ok(()) => {
                    let input = IssueInput {
                        holder: *holder,
                        reader,
                        pin,
                        pin_letter,
                        update_holder,
                    };
                    let pinfl = input.holder.record.pinfl.clone();
                    station::services::mirror::before_issue(st, session, &pinfl)
                        .and_then(|()| {
                            station::issuance::issue(st, session, &input, &mut |p| {
                                send(Event::IssueStep(StepReport::from(p)))
                            })
                        })
                        .map(Box::new)
                        .map_err(|e| explain_issue_error(lang, &e))
                }
            };
            send(Event::Issued(r));
        }
        Command::Replace {
            document,
            reason,
            holder,
            reader,
            pin,
            pin_letter,
            update_holder,
        } => {
            let input = station::services::ReplaceInput {
                document,
                reason,
                issue: IssueInput {
                    holder: *holder,
                    reader,
                    pin,
                    pin_letter,
                    update_holder,
                },
            };
            let r = match need(st, session, &[Role::Clerk], "replace documents") {
                Err(e) => Err(explain_issue_error(lang, &e)),
                Ok(()) => station::services::replace(st, session, &input, &mut |p| {
                    send(Event::IssueStep(StepReport::from(p)))
                })
                .map(Box::new)
                .map_err(|e| explain_issue_error(lang, &e)),
            };
            send(Event::Replaced(r));
        }
        Command::RevokeDocument { number, reason } => send(Event::DocumentRevoked(
            need(
                st,
                session,
                &[Role::Clerk, Role::CaAdmin],
                "revoke documents",
            )
            .and_then(|_| station::records::revoke(st, session, number.trim(), &reason))
            .map_err(shown(lang)),
        )),
        _ => {}
    }
}

/// The CA administrator's commands: the hierarchy, CRLs, certificates and dual-control
/// requests.
fn ca_admin(st: &mut Station, session: &Session, lang: Lang, cmd: Command, send: &dyn Fn(Event)) {
    let id_arg = |id: i64| ("id", i18n::s(id.to_string()));
    match cmd {
        Command::CaSummaries => send(Event::CaSummaries(
            need(st, session, &[Role::CaAdmin], "view the CA hierarchy")
                .and_then(|_| station::hierarchy::summaries(&st.registry, &st.layout))
                .map_err(shown(lang)),
        )),
        Command::PublishCrl => send(Event::CrlPublished(
            need(st, session, &[Role::CaAdmin], "publish CRLs")
                .and_then(|_| station::ca_admin::crl_all(st, session, None))
                .map_err(shown(lang)),
        )),
        Command::RevokeCertificate { serial, reason } => send(Event::CertificateRevoked(
            interactive::revoke_certificate(st, session, &serial, &reason).map_err(shown(lang)),
        )),
        Command::CaRequests => send(Event::CaRequests(
            need(st, session, &[Role::CaAdmin], "view CA requests")
                .and_then(|_| {
                    let requests = station::rotation::list_requests(st, session.actor())?;
                    let reissue = station::rotation::reissue_list(st, session)?;
                    Ok(Box::new(RotationLists { requests, reissue }))
                })
                .map_err(shown(lang)),
        )),
        Command::RequestRotation { ca, note } => send(Event::CaRequestDone(
            station::rotation::request_rotation(st, session, &ca, note.as_deref())
                .map(|r| {
                    tr_args(
                        lang,
                        "ca-request-filed",
                        &[
                            id_arg(r.id),
                            ("ca", i18n::s(r.ca.as_str())),
                            ("expires", i18n::s(i18n::date(&r.expires_at))),
                        ],
                    )
                })
                .map_err(shown(lang)),
        )),
        Command::RenewDocumentSigner => send(Event::CaRequestDone(
            station::document_signer::renew(st, session)
                .map(|r| {
                    tr_args(
                        lang,
                        "ca-ds-renewed",
                        &[
                            ("key", i18n::s(r.key.as_str())),
                            ("csca", i18n::s(r.csca.as_str())),
                            (
                                "until",
                                i18n::s(i18n::date(r.key_usage_until.as_deref().unwrap_or(""))),
                            ),
                        ],
                    )
                })
                .map_err(shown(lang)),
        )),
        Command::ApproveRequest { id } => send(Event::CaRequestDone(
            station::rotation::approve(st, session, id)
                .map(|a| approval_text(lang, &a))
                .map_err(shown(lang)),
        )),
        Command::RefuseRequest { id } => send(Event::CaRequestDone(
            station::rotation::refuse(st, session, id, None)
                .map(|r| {
                    if r.state == station::rotation::WITHDRAWN {
                        tr_args(lang, "ca-request-withdrawn", &[id_arg(r.id)])
                    } else {
                        let why = ("why", i18n::s(r.outcome.unwrap_or_default()));
                        tr_args(lang, "ca-request-refused", &[id_arg(r.id), why])
                    }
                })
                .map_err(shown(lang)),
        )),
        _ => {}
    }
}

/// The auditor's commands: the audit log, its verification and exports.
fn auditor(
    st: &mut Station,
    session: &Session,
    (data_dir, lang): (&Path, Lang),
    cmd: Command,
    send: &dyn Fn(Event),
) {
    match cmd {
        Command::AuditEvents => send(Event::AuditEvents(
            interactive::audit_events(st, session).map_err(shown(lang)),
        )),
        Command::VerifyLog => send(Event::LogVerified(
            need(
                st,
                session,
                &[Role::Auditor, Role::CaAdmin],
                "verify the audit log",
            )
            .and_then(|_| {
                let root = station::audit::root_file(None, data_dir)?;
                station::audit::verify_log(st, &root, &Default::default())
            })
            .map_err(shown(lang)),
        )),
        Command::Export { dir, range, format } => send(Event::Exported(
            need(st, session, &[Role::Auditor], "export the audit log")
                .and_then(|_| station::audit::export(st, session, &dir, &range, format))
                .map(Box::new)
                .map_err(shown(lang)),
        )),
        Command::VerifyExport { dir, root } => send(Event::ExportVerified(
            need(
                st,
                session,
                &[Role::Auditor, Role::CaAdmin],
                "verify audit exports",
            )
            .and_then(|_| {
                let root = station::audit::root_file(root.as_deref(), data_dir)?;
                station::audit::verify(&dir, &root)
            })
            .map(Box::new)
            .map_err(shown(lang)),
        )),
        _ => {}
    }
}

impl Drop for Worker {
    /// Close the command channel and wait for the worker to finish its command and close the
    /// station (HSM session, registry): a window closed during an issuance lets it end, and
    /// the process never exits under a station that is still closing.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
