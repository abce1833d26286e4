//! The application: log-in, the role's workspace, idle log-out. State lives here; each
//! workspace is drawn by a function of `&mut` its state (clerk.rs, ca.rs, auditor.rs), and all
//! station work goes to the [`Worker`] thread.

use std::time::{Duration, Instant};

use egui::{Color32, RichText};
use station::Role;
use zeroize::Zeroize;

use crate::auditor::AuditorState;
use crate::ca::CaState;
use crate::centre_sync::CentreSyncState;
use crate::clerk::ClerkState;
use crate::deliveries::DeliveriesState;
use crate::i18n::{self, Lang};
use crate::options::GuiOptions;
use crate::readers::ReaderPoller;
use crate::services::ServicesState;
use crate::to_replace::ToReplaceState;
use crate::worker::{Command, Event, SessionInfo, Worker};

#[derive(Default)]
struct LoginState {
    name: String,
    password: String,
    pending: bool,
    error: Option<String>,
    /// The operator chose the language on this log-in screen (it is then remembered for them);
    /// otherwise their remembered language applies once they are logged in.
    lang_chosen: bool,
}

/// The clerk's two workspaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClerkTab {
    /// Enrolment and issuance (clerk.rs).
    #[default]
    Issuance,
    /// Card services for an issued card (services/).
    Services,
    /// The office's cards the centre flagged for replacement (to_replace.rs; an enrolled
    /// station only).
    ToReplace,
}

/// The CA administrator's and the auditor's two workspaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdminTab {
    /// The role's own workspace (ca/, auditor/).
    #[default]
    Main,
    /// The national centre's e-government deliveries (deliveries.rs).
    Deliveries,
}

/// What the idle time-out does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idle {
    Active,
    /// The warning with its countdown is shown: seconds left.
    Warning(u64),
    LogOut,
}

/// The whole GUI.
pub struct StationApp {
    pub opts: GuiOptions,
    worker: Worker,
    readers: Option<ReaderPoller>,
    login: LoginState,
    session: Option<SessionInfo>,
    last_activity: Instant,
    notice: Option<String>,
    pub clerk: ClerkState,
    /// The clerk's Card services workspace.
    pub services: ServicesState,
    /// Which of the clerk's workspaces is shown.
    pub clerk_tab: ClerkTab,
    pub ca: CaState,
    pub auditor: AuditorState,
    /// The e-government deliveries tab of the CA-admin and auditor workspaces.
    pub deliveries: DeliveriesState,
    /// The clerk's cards-to-replace tab (an enrolled station).
    pub to_replace: ToReplaceState,
    /// The registry brought up to date with the centre (enrolled station, clerk or ca-admin).
    pub centre_sync: CentreSyncState,
    /// Which of the CA-admin's or auditor's workspaces is shown.
    pub admin_tab: AdminTab,
    /// Time spent building the last frames' UI, for the frame-time figure.
    pub frame_times: Vec<Duration>,
    fonts_installed: bool,
    /// The interface language.
    pub lang: Lang,
    /// Log out asked while the clerk's form holds data: the confirmation is open.
    confirm_logout: bool,
    /// Put the focus on the confirmation's Log out button (Enter confirms).
    focus_confirm: bool,
    /// The clerk's draft kept after an idle log-out, for the same operator's next log-in.
    idle_draft: Option<(String, ClerkState)>,
    /// Put the keyboard focus on the log-in form's first field (start, after a log-out).
    focus_login: bool,
}

impl StationApp {
    /// Issuance, with the holder (or another station's document) looked up there to replace a
    /// flagged card; while an issuance runs only the tab changes (its form is not overwritten).
    fn look_up_to_replace(&mut self, what: &crate::clerk::lookup::Find) {
        self.clerk_tab = ClerkTab::Issuance;
        if !self.clerk.issuing() {
            // A replacement prepared for another card is not this one's.
            self.clerk.replacing = None;
            self.clerk.lookup.find(what);
        }
    }

    pub fn new(opts: GuiOptions) -> Self {
        let worker = Worker::spawn(opts.data_dir.clone());
        let readers = opts
            .poll_readers
            .then(|| ReaderPoller::spawn(worker.waker.clone(), opts.reader.clone()));
        StationApp {
            opts,
            worker,
            readers,
            login: LoginState::default(),
            session: None,
            last_activity: Instant::now(),
            notice: None,
            clerk: ClerkState::default(),
            services: ServicesState::default(),
            clerk_tab: ClerkTab::default(),
            ca: CaState::default(),
            auditor: AuditorState::default(),
            deliveries: DeliveriesState::default(),
            to_replace: ToReplaceState::default(),
            centre_sync: CentreSyncState::default(),
            admin_tab: AdminTab::default(),
            frame_times: Vec::new(),
            fonts_installed: false,
            lang: Lang::default(),
            confirm_logout: false,
            focus_confirm: false,
            idle_draft: None,
            focus_login: true,
        }
    }

    pub fn session(&self) -> Option<&SessionInfo> {
        self.session.as_ref()
    }

    /// Work still running on the worker (an issuance, an export, ...).
    pub fn busy(&self) -> bool {
        self.clerk.busy()
            || self.services.busy()
            || self.auditor.busy()
            || self.ca.busy()
            || self.deliveries.busy()
            || self.to_replace.busy()
            || self.login.pending
    }

    fn send(&mut self, cmd: Command) {
        if !self.worker.send(cmd) {
            self.notice = Some(i18n::tr(self.lang, "error-worker-gone"));
        }
    }

    fn log_out(&mut self, reason: &'static str) {
        self.send(Command::Logout { reason });
        let operator = self.session.take().map(|s| s.operator);
        // Nothing the previous operator saw stays on screen; after an idle time-out the clerk's
        // draft is kept (off screen) for the same operator's next log-in.
        let clerk = std::mem::take(&mut self.clerk);
        self.idle_draft = match (reason, operator) {
            ("idle timeout", Some(op)) if clerk.has_data() => Some((op, clerk)),
            _ => None,
        };
        self.services = ServicesState::default();
        self.clerk_tab = ClerkTab::default();
        self.ca = CaState::default();
        self.auditor = AuditorState::default();
        self.deliveries = DeliveriesState::default();
        self.to_replace = ToReplaceState::default();
        self.centre_sync = CentreSyncState::default();
        self.admin_tab = AdminTab::default();
        self.login.password.zeroize();
        self.login.lang_chosen = false;
        self.confirm_logout = false;
        self.focus_login = true;
    }

    /// Seconds of warning before an idle log-out: 30, or a third of a short time-out.
    fn idle_warning(&self) -> Duration {
        Duration::from_secs(30).min(self.opts.idle_timeout / 3)
    }

    fn idle_state(&self) -> Idle {
        let idle = self.last_activity.elapsed();
        let timeout = self.opts.idle_timeout;
        if self.busy() {
            Idle::Active
        } else if idle >= timeout {
            Idle::LogOut
        } else if idle + self.idle_warning() >= timeout {
            Idle::Warning((timeout - idle).as_secs_f64().ceil() as u64)
        } else {
            Idle::Active
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::LoggedIn(s) => {
                self.login.pending = false;
                self.login.error = None;
                self.notice = None;
                self.last_activity = Instant::now();
                if let Some(l) = s.language.as_deref().and_then(Lang::from_tag) {
                    self.lang = l;
                }
                self.clerk = match self.idle_draft.take() {
                    Some((op, draft)) if op == s.operator => draft,
                    _ => ClerkState::for_document(&s.document),
                };
                self.clerk.focus_first_field();
                self.services = ServicesState::default();
                self.clerk_tab = ClerkTab::default();
                self.ca = CaState::default();
                self.auditor = AuditorState::default();
                self.deliveries = DeliveriesState::default();
                self.to_replace = ToReplaceState::default();
                self.centre_sync = CentreSyncState::default();
                self.admin_tab = AdminTab::default();
                self.session = Some(s);
            }
            Event::LoginFailed(e) => {
                self.login.pending = false;
                self.login.error = Some(e);
            }
            Event::LoggedOut => {}
            other => {
                let card_busy = self.clerk.busy() || self.services.busy();
                self.clerk.handle(&other, self.lang);
                self.services.handle(&other, self.lang);
                self.ca.handle(&other);
                self.auditor.handle(&other);
                self.to_replace.handle(&other);
                let every = self.session.as_ref().and_then(|s| s.centre_sync);
                self.centre_sync.handle(&other, every);
                let renewed = match &other {
                    Event::Issued(Ok(r)) => r.document_signer_renewed.as_ref(),
                    Event::Replaced(Ok(r)) => r.new.document_signer_renewed.as_ref(),
                    other => CentreSyncState::renewed(other),
                };
                if let (Some(s), Some(d)) = (&mut self.session, renewed) {
                    // What the clerk is told about the Document Signer: the new one now.
                    s.document_signer = d.key_usage_until.clone().zip(d.days_left);
                }
                let mut cmds = Vec::new();
                self.deliveries.handle(&other, &mut cmds);
                for c in cmds {
                    self.send(c);
                }
                if card_busy && !self.clerk.busy() && !self.services.busy() {
                    if let Some(r) = &self.readers {
                        r.busy.store(false, std::sync::atomic::Ordering::Relaxed);
                        r.generation
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Draw one frame (eframe calls it through [`eframe::App::ui`]; tests call it directly).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let started = Instant::now();
        if !self.fonts_installed {
            crate::fonts::install(ui.ctx());
            self.fonts_installed = true;
        }
        self.worker.waker.set(ui.ctx());
        for ev in self.worker.poll() {
            self.handle(ev);
        }
        i18n::set(ui.ctx(), self.lang);
        let active = ui.input(|i| !i.events.is_empty() || i.pointer.is_moving());
        if active {
            self.last_activity = Instant::now();
        }
        if self.session.is_some() {
            match self.idle_state() {
                Idle::LogOut => {
                    self.log_out("idle timeout");
                    self.notice = Some(i18n::tr_args(
                        self.lang,
                        "idle-logged-out",
                        &[("seconds", i18n::n(self.opts.idle_timeout.as_secs() as f64))],
                    ));
                }
                Idle::Warning(left) => {
                    self.idle_warning_ui(ui, left);
                    ui.ctx().request_repaint_after(Duration::from_millis(250));
                }
                Idle::Active => ui.ctx().request_repaint_after(Duration::from_secs(1)),
            }
        }

        match self.session.clone() {
            None => self.login_ui(ui),
            Some(s) => self.workspace_ui(ui, &s),
        }
        self.frame_times.push(started.elapsed());
        if self.frame_times.len() > 1000 {
            self.frame_times.drain(..500);
        }
    }

    /// The idle warning: a countdown and "Stay logged in" (Enter stays).
    fn idle_warning_ui(&mut self, ui: &mut egui::Ui, left: u64) {
        let mut stay = false;
        egui::Window::new(i18n::t(ui, "idle-warning-title"))
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ui.ctx(), |ui| {
                ui.label(i18n::ta(
                    ui,
                    "idle-warning",
                    &[("seconds", i18n::n(left as f64))],
                ));
                stay = ui.button(i18n::t(ui, "idle-stay")).clicked();
            });
        // Any input counts as activity; the button makes it explicit.
        if stay {
            self.last_activity = Instant::now();
        }
    }

    fn login_ui(&mut self, ui: &mut egui::Ui) {
        egui::CentralPanel::default_margins().show(ui, |ui| {
            ui.vertical_centered(|ui| {
                ui.add_space(60.0);
                ui.heading(i18n::t(ui, "login-heading"));
                ui.add_space(20.0);
            });
            if let Some(n) = &self.notice {
                ui.colored_label(Color32::from_rgb(200, 120, 0), n);
            }
            let focus = std::mem::take(&mut self.focus_login);
            egui::Grid::new("login")
                .num_columns(2)
                .min_col_width(140.0)
                .show(ui, |ui| {
                    let l = ui.label(i18n::t(ui, "login-operator"));
                    let r = ui
                        .add(egui::TextEdit::singleline(&mut self.login.name).desired_width(240.0))
                        .labelled_by(l.id);
                    if focus {
                        r.request_focus();
                    }
                    ui.end_row();
                    let l = ui.label(i18n::t(ui, "login-password"));
                    let pw = crate::secret_field::secret_field(
                        ui,
                        &mut self.login.password,
                        "login-password",
                        240.0,
                    )
                    .labelled_by(l.id);
                    ui.end_row();
                    let enter = pw.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    ui.label(i18n::t(ui, "login-language"));
                    ui.horizontal(|ui| {
                        for lang in Lang::ALL {
                            // Choosing, even the language already shown, is remembered.
                            if ui
                                .selectable_label(self.lang == lang, lang.native_name())
                                .clicked()
                            {
                                self.lang = lang;
                                self.login.lang_chosen = true;
                                i18n::set(ui.ctx(), lang);
                            }
                        }
                    });
                    ui.end_row();
                    ui.label("");
                    let clicked = ui
                        .add_enabled(
                            !self.login.pending,
                            egui::Button::new(i18n::t(ui, "login-button")),
                        )
                        .clicked();
                    if (clicked || enter) && !self.login.pending {
                        let password =
                            zeroize::Zeroizing::new(std::mem::take(&mut self.login.password));
                        self.login.pending = true;
                        self.login.error = None;
                        let name = self.login.name.trim().to_string();
                        let language = self.login.lang_chosen.then(|| self.lang.tag().to_owned());
                        self.send(Command::Login {
                            name,
                            password,
                            language,
                            lang: self.lang,
                        });
                    }
                    ui.end_row();
                });
            if self.login.pending {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(i18n::t(ui, "login-checking"));
                });
            }
            if let Some(e) = &self.login.error {
                ui.colored_label(
                    Color32::RED,
                    i18n::ta(ui, "login-refused", &[("reason", i18n::s(e.as_str()))]),
                );
            }
            ui.add_space(12.0);
            ui.label(
                RichText::new(i18n::ta(
                    ui,
                    "login-data-dir",
                    &[("dir", i18n::s(self.opts.data_dir.display().to_string()))],
                ))
                .weak(),
            );
        });
    }

    fn workspace_ui(&mut self, ui: &mut egui::Ui, s: &SessionInfo) {
        let workspace = match s.role {
            Role::Clerk => i18n::t(ui, "workspace-clerk"),
            Role::CaAdmin => i18n::t(ui, "workspace-ca"),
            Role::Auditor => i18n::t(ui, "workspace-auditor"),
        };
        let role = match s.role {
            Role::Clerk => i18n::t(ui, "role-clerk"),
            Role::CaAdmin => i18n::t(ui, "role-ca-admin"),
            Role::Auditor => i18n::t(ui, "role-auditor"),
        };
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(workspace);
                ui.separator();
                ui.label(i18n::ta(
                    ui,
                    "top-operator",
                    &[
                        ("name", i18n::s(s.operator.as_str())),
                        ("role", i18n::s(role)),
                    ],
                ));
                if s.role != Role::Clerk {
                    ui.separator();
                    self.admin_tabs_ui(ui, s.role);
                }
                if s.role == Role::Clerk {
                    ui.separator();
                    let mut tabs = vec![
                        (ClerkTab::Issuance, "tab-issuance"),
                        (ClerkTab::Services, "tab-services"),
                    ];
                    // The cards to replace are the national centre's: an enrolled station.
                    if s.centre {
                        tabs.push((ClerkTab::ToReplace, "tab-to-replace"));
                    }
                    // Alt+1, Alt+2 (and Alt+3) switch between them from anywhere.
                    for (n, (tab, id)) in tabs.into_iter().enumerate() {
                        let key = [egui::Key::Num1, egui::Key::Num2, egui::Key::Num3][n];
                        if ui.input_mut(|i| i.consume_key(egui::Modifiers::ALT, key)) {
                            self.clerk_tab = tab;
                        }
                        let text = RichText::new(i18n::t(ui, id)).strong();
                        ui.selectable_value(&mut self.clerk_tab, tab, text)
                            .on_hover_text(format!("Alt+{}", n + 1));
                    }
                }
            });
        });
        let mut cmds = Vec::new();
        crate::centre_sync::bar(ui, &mut self.centre_sync, s, &mut cmds);
        // The role decides what is drawn: another role's workspace is never built, so it
        // cannot be reached by mouse, keyboard or screen reader.
        match s.role {
            Role::Clerk => {
                let snap = self.readers.as_ref().map(|r| r.snapshot());
                match self.clerk_tab {
                    ClerkTab::Issuance => crate::clerk::ui(
                        ui,
                        &mut self.clerk,
                        s,
                        snap.as_ref(),
                        &self.opts,
                        &mut cmds,
                    ),
                    ClerkTab::Services => {
                        crate::services::view::ui(
                            ui,
                            &mut self.services,
                            snap.as_ref(),
                            self.opts.reader.as_deref(),
                            &mut cmds,
                        );
                        // A flagged card to replace: its holder (or document) under Issuance.
                        if let Some(what) = self.services.replace.take() {
                            self.look_up_to_replace(&what);
                        }
                    }
                    ClerkTab::ToReplace if s.centre => {
                        // "Look up": the holder under Issuance, where the card is replaced.
                        if let Some(what) =
                            crate::to_replace::ui(ui, &mut self.to_replace, &s.station, &mut cmds)
                        {
                            self.look_up_to_replace(&what);
                        }
                    }
                    // No centre, no such tab.
                    ClerkTab::ToReplace => self.clerk_tab = ClerkTab::Issuance,
                }
                if self.clerk.busy() || self.services.busy() {
                    if let Some(r) = &self.readers {
                        r.busy.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            Role::CaAdmin | Role::Auditor if self.admin_tab == AdminTab::Deliveries => {
                crate::deliveries::ui(ui, &mut self.deliveries, s, &mut cmds)
            }
            Role::CaAdmin => crate::ca::ui(ui, &mut self.ca, s, &mut cmds),
            Role::Auditor => crate::auditor::ui(ui, &mut self.auditor, &self.opts, &mut cmds),
        }
        for c in cmds {
            self.send(c);
        }
        // Log out is drawn last, at the top right: the last stop of the Tab order.
        let mut logout = false;
        egui::Area::new(egui::Id::unique("logout-area"))
            .anchor(egui::Align2::RIGHT_TOP, [-10.0, 6.0])
            .show(ui.ctx(), |ui| {
                logout = ui.button(i18n::t(ui, "logout")).clicked();
            });
        if logout {
            if s.role == Role::Clerk && (self.clerk.has_data() || self.services.has_data()) {
                self.confirm_logout = true;
                self.focus_confirm = true;
            } else {
                self.log_out("operator");
                return;
            }
        }
        if self.confirm_logout && self.confirm_logout_ui(ui) {
            self.log_out("operator");
            return;
        }
        if self.busy() {
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
    }

    /// The CA administrator's or auditor's tabs: their workspace and the e-government
    /// deliveries (Alt+1, Alt+2 from anywhere).
    fn admin_tabs_ui(&mut self, ui: &mut egui::Ui, role: Role) {
        let main = match role {
            Role::CaAdmin => "tab-ca-keys",
            _ => "tab-audit-log",
        };
        let tabs = [
            (AdminTab::Main, main),
            (AdminTab::Deliveries, "tab-deliveries"),
        ];
        for (n, (tab, id)) in tabs.into_iter().enumerate() {
            let key = [egui::Key::Num1, egui::Key::Num2][n];
            if ui.input_mut(|i| i.consume_key(egui::Modifiers::ALT, key)) {
                self.admin_tab = tab;
            }
            let text = RichText::new(i18n::t(ui, id)).strong();
            ui.selectable_value(&mut self.admin_tab, tab, text)
                .on_hover_text(format!("Alt+{}", n + 1));
        }
    }

    /// "The form holds data: log out?" Returns true when confirmed (Enter confirms).
    fn confirm_logout_ui(&mut self, ui: &mut egui::Ui) -> bool {
        let mut confirm = false;
        let mut stay = false;
        egui::Window::new(i18n::t(ui, "logout-confirm-title"))
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ui.ctx(), |ui| {
                ui.label(i18n::t(ui, "logout-confirm-text"));
                ui.horizontal(|ui| {
                    let yes = ui.button(i18n::t(ui, "logout-confirm-yes"));
                    if std::mem::take(&mut self.focus_confirm) {
                        yes.request_focus();
                    }
                    confirm = yes.clicked();
                    stay = ui.button(i18n::t(ui, "logout-confirm-stay")).clicked();
                });
            });
        if stay || ui.input(|i| i.key_pressed(egui::Key::Escape)) {
            self.confirm_logout = false;
        }
        confirm
    }
}

impl eframe::App for StationApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        StationApp::ui(self, ui);
    }
}

impl Drop for StationApp {
    fn drop(&mut self) {
        self.login.password.zeroize();
    }
}
