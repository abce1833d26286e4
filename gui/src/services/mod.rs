//! The clerk's Card services workspace (issue 16): a card brought to the desk is read and
//! matched to the registry (`station::services::identify`), the screen shows whose it is, the
//! document and each certificate with status and expiry, the holder's registration addresses,
//! and the services that apply to it now — renew the certificates, unblock the PIN, suspend /
//! resume, card returned, address set / end — each refused one with its reason. Every service
//! runs on the worker thread ([`crate::service_work`]) with its steps shown as they are begun, a failure in
//! plain words ([`crate::service_work::explain`]) with Retry only when repeating can succeed, and the card read
//! again after every action so the screen shows what the registry now holds. The holder types
//! PINs in the holder PIN window ([`crate::pin_window`]). Drawing is in [`view`] and
//! [`dialogs`].

pub mod dialogs;
pub mod view;

use std::path::PathBuf;

use station::holder::AddressRecord;
use station::services::identify::{CardIdentity, Service};
use zeroize::Zeroizing;

use crate::i18n::Lang;
use crate::pin_window::PinWindow;
pub use crate::service_work::{Action, Reply, Request, ServiceFailure};
use crate::worker::{Command, Event};

/// A service as the clerk chose it, without the PIN (kept for Retry; a PIN is asked again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Renew,
    Unblock {
        identity_confirmed: bool,
        new_puk_letter: Option<PathBuf>,
    },
    Suspend,
    Resume {
        identity_confirmed: bool,
    },
    CardReturned,
    AddressSet(AddressRecord),
    AddressEnd(Option<String>),
}

impl Plan {
    pub fn needs_pin(&self) -> bool {
        matches!(self, Plan::Renew | Plan::Unblock { .. })
    }

    pub fn service(&self) -> Service {
        match self {
            Plan::Renew => Service::Renew,
            Plan::Unblock { .. } => Service::Unblock,
            Plan::Suspend => Service::Suspend,
            Plan::Resume { .. } => Service::Resume,
            Plan::CardReturned => Service::CardReturned,
            Plan::AddressSet(_) => Service::AddressSet,
            Plan::AddressEnd(_) => Service::AddressEnd,
        }
    }
}

/// A service at work: the steps begun so far (catalogue ids).
pub struct Running {
    pub service: Service,
    pub steps: Vec<&'static str>,
}

/// The workspace's state.
#[derive(Default)]
pub struct ServicesState {
    /// The reader chosen (a name or a unique part of one); `None`: the one holding a card.
    pub reader: Option<String>,
    pub identity: Option<Box<CardIdentity>>,
    pub identify_pending: bool,
    /// The card could not be read or matched.
    pub read_failure: Option<ServiceFailure>,
    /// The last service failed.
    pub action_failure: Option<(Plan, ServiceFailure)>,
    pub running: Option<Running>,
    /// The last service's outcome.
    pub done: Option<String>,
    pub dialog: Option<dialogs::Dialog>,
    /// Put the focus on the dialog's first field in the next frame.
    pub focus_dialog: bool,
    pub pin: PinWindow,
    /// The service waiting for the holder's PIN.
    pin_for: Option<Plan>,
    /// The service at work or last done (for its failure's Retry).
    last_plan: Option<Plan>,
    /// Read the card again in the next frame (after every action).
    refresh: bool,
    /// The chosen reader had a card in the last frame (a card inserted is read at once).
    card_was_present: bool,
    /// The flagged card the clerk chose to replace: its holder (a card of this station's) or
    /// its document (another station's), which the clerk's workspace looks up under Issuance,
    /// where the card is replaced. Taken by the app.
    pub replace: Option<crate::clerk::lookup::Find>,
}

impl ServicesState {
    /// Work still running on the worker.
    pub fn busy(&self) -> bool {
        self.identify_pending || self.running.is_some()
    }

    /// A dialog or the PIN window holds something typed.
    pub fn has_data(&self) -> bool {
        self.dialog.is_some() || self.pin.is_open()
    }

    /// Ask the worker to read the card.
    pub fn identify(&mut self, cmds: &mut Vec<Command>) {
        self.identify_pending = true;
        cmds.push(Command::Service(Request::Identify {
            reader: self.reader.clone(),
        }));
    }

    pub fn handle(&mut self, ev: &Event, _lang: Lang) {
        let Event::Service(reply) = ev else { return };
        match reply {
            Reply::Identified(r) => {
                self.identify_pending = false;
                match r {
                    Ok(id) => {
                        self.identity = Some(id.clone());
                        self.read_failure = None;
                    }
                    Err(f) => {
                        self.identity = None;
                        self.read_failure = Some(f.clone());
                    }
                }
            }
            Reply::Step(id) => {
                if let Some(r) = &mut self.running {
                    r.steps.push(id);
                }
            }
            Reply::Done { result, .. } => {
                let plan = self.last_plan.take();
                self.running = None;
                match result {
                    Ok(msg) => self.done = Some(msg.clone()),
                    Err(f) => {
                        self.action_failure = plan.map(|p| (p, f.clone()));
                    }
                }
                self.refresh = true;
            }
        }
    }

    /// Start `plan` for the card on screen (with the holder's `pin` when it needs one).
    pub fn start(&mut self, plan: Plan, pin: Option<Zeroizing<String>>, cmds: &mut Vec<Command>) {
        let Some(id) = &self.identity else { return };
        let document = id.document.number.clone();
        let pinfl = id.holder.pinfl.clone();
        let reader = Some(id.reader.clone());
        let pin = pin.unwrap_or_default();
        let action = match plan.clone() {
            Plan::Renew => Action::Renew {
                document,
                reader,
                pin,
            },
            Plan::Unblock {
                identity_confirmed,
                new_puk_letter,
            } => Action::Unblock {
                document,
                reader,
                pin,
                identity_confirmed,
                new_puk_letter,
            },
            Plan::Suspend => Action::Suspend { document },
            Plan::Resume { identity_confirmed } => Action::Resume {
                document,
                identity_confirmed,
            },
            Plan::CardReturned => Action::CardReturned { document },
            Plan::AddressSet(address) => Action::AddressSet { pinfl, address },
            Plan::AddressEnd(ended_on) => Action::AddressEnd { pinfl, ended_on },
        };
        self.running = Some(Running {
            service: plan.service(),
            steps: Vec::new(),
        });
        self.done = None;
        self.action_failure = None;
        self.last_plan = Some(plan);
        cmds.push(Command::Service(Request::Act(action)));
    }

    /// Go on with `plan`: ask the holder's PIN first when it needs one.
    pub fn go(&mut self, plan: Plan, cmds: &mut Vec<Command>) {
        if !plan.needs_pin() {
            self.start(plan, None, cmds);
            return;
        }
        let Some(id) = &self.identity else { return };
        let ask = match plan {
            Plan::Renew => crate::pin_window::PinAsk::CurrentPin,
            _ => match station::holder::parse_date(&id.holder.date_of_birth) {
                Ok(date_of_birth) => crate::pin_window::PinAsk::NewPin { date_of_birth },
                Err(_) => crate::pin_window::PinAsk::CurrentPin,
            },
        };
        self.pin.open(ask);
        self.pin_for = Some(plan);
    }

    /// The holder PIN window: a PIN entered starts the service waiting for it.
    fn pin_ui(&mut self, ctx: &egui::Context, cmds: &mut Vec<Command>) {
        match self.pin.show(ctx) {
            crate::pin_window::PinOutcome::Nothing => {}
            crate::pin_window::PinOutcome::Cancelled => self.pin_for = None,
            crate::pin_window::PinOutcome::Entered(pin) => {
                if let Some(plan) = self.pin_for.take() {
                    self.start(plan, Some(pin), cmds);
                }
            }
        }
    }
}

pub use crate::i18n::status_word;
