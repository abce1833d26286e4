//! The application: log-in, the role's workspace, idle log-out. State lives here; each
//! workspace is drawn by a function of `&mut` its state (clerk.rs, ca.rs, auditor.rs), and all
//! station work goes to the [`Worker`] thread.

use std::time::{Duration, Instant};

use egui::{Color32, RichText};
use station::Role;
use zeroize::Zeroize;

use crate::auditor::AuditorState;
use crate::ca::CaState;
use crate::clerk::ClerkState;
use crate::options::GuiOptions;
use crate::readers::ReaderPoller;
use crate::worker::{Command, Event, SessionInfo, Worker};

#[derive(Default)]
struct LoginState {
    name: String,
    password: String,
    pending: bool,
    error: Option<String>,
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
    pub ca: CaState,
    pub auditor: AuditorState,
    /// Time spent building the last frames' UI, for the frame-time figure.
    pub frame_times: Vec<Duration>,
    fonts_installed: bool,
}

impl StationApp {
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
            ca: CaState::default(),
            auditor: AuditorState::default(),
            frame_times: Vec::new(),
            fonts_installed: false,
        }
    }

    pub fn session(&self) -> Option<&SessionInfo> {
        self.session.as_ref()
    }

    /// Work still running on the worker (an issuance, an export, ...).
    pub fn busy(&self) -> bool {
        self.clerk.busy() || self.auditor.busy() || self.ca.busy() || self.login.pending
    }

    fn send(&mut self, cmd: Command) {
        if !self.worker.send(cmd) {
            self.notice = Some(crate::GuiError::WorkerGone.to_string());
        }
    }

    fn log_out(&mut self, reason: &'static str) {
        self.send(Command::Logout { reason });
        self.session = None;
        // Nothing the previous operator saw stays on screen.
        self.clerk = ClerkState::default();
        self.ca = CaState::default();
        self.auditor = AuditorState::default();
        self.login.password.zeroize();
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::LoggedIn(s) => {
                self.login.pending = false;
                self.login.error = None;
                self.notice = None;
                self.last_activity = Instant::now();
                self.clerk = ClerkState::for_document(&s.document);
                self.ca = CaState::default();
                self.auditor = AuditorState::default();
                self.session = Some(s);
            }
            Event::LoginFailed(e) => {
                self.login.pending = false;
                self.login.error = Some(e);
            }
            Event::LoggedOut => {}
            other => {
                let clerk_busy = self.clerk.busy();
                self.clerk.handle(&other);
                self.ca.handle(&other);
                self.auditor.handle(&other);
                if clerk_busy && !self.clerk.busy() {
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
        let active = ui.input(|i| !i.events.is_empty() || i.pointer.is_moving());
        if active {
            self.last_activity = Instant::now();
        }
        if self.session.is_some() {
            if !self.busy() && self.last_activity.elapsed() >= self.opts.idle_timeout {
                self.log_out("idle timeout");
                self.notice = Some(format!(
                    "You were logged out after {} s without activity.",
                    self.opts.idle_timeout.as_secs()
                ));
            } else {
                ui.ctx().request_repaint_after(Duration::from_secs(1));
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

    fn login_ui(&mut self, ui: &mut egui::Ui) {
        egui::CentralPanel::default_margins().show(ui, |ui| {
            ui.vertical_centered(|ui| {
                ui.add_space(60.0);
                ui.heading("idstation — operator log-in");
                ui.add_space(20.0);
            });
            if let Some(n) = &self.notice {
                ui.colored_label(Color32::from_rgb(200, 120, 0), n);
            }
            egui::Grid::new("login").num_columns(2).show(ui, |ui| {
                let l = ui.label("Operator");
                ui.add(egui::TextEdit::singleline(&mut self.login.name).desired_width(240.0))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Password");
                let pw = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.login.password)
                            .password(true)
                            .desired_width(240.0),
                    )
                    .labelled_by(l.id);
                ui.end_row();
                let enter = pw.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                ui.label("");
                let clicked = ui
                    .add_enabled(!self.login.pending, egui::Button::new("Log in"))
                    .clicked();
                if (clicked || enter) && !self.login.pending {
                    let password =
                        zeroize::Zeroizing::new(std::mem::take(&mut self.login.password));
                    self.login.pending = true;
                    self.login.error = None;
                    let name = self.login.name.trim().to_string();
                    self.send(Command::Login { name, password });
                }
                ui.end_row();
            });
            if self.login.pending {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Checking the password…");
                });
            }
            if let Some(e) = &self.login.error {
                ui.colored_label(Color32::RED, format!("Log-in refused: {e}"));
            }
            ui.add_space(12.0);
            ui.label(RichText::new(format!("Data dir: {}", self.opts.data_dir.display())).weak());
        });
    }

    fn workspace_ui(&mut self, ui: &mut egui::Ui, s: &SessionInfo) {
        let workspace = match s.role {
            Role::Clerk => "Clerk workspace",
            Role::CaAdmin => "CA administration",
            Role::Auditor => "Audit",
        };
        let mut logout = false;
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(workspace);
                ui.separator();
                ui.label(format!("Operator {} ({})", s.operator, s.role.as_str()));
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    logout = ui.button("Log out").clicked();
                });
            });
        });
        if logout {
            self.log_out("operator");
            return;
        }
        let mut cmds = Vec::new();
        // The role decides what is drawn: another role's workspace is never built, so it
        // cannot be reached by mouse, keyboard or screen reader.
        match s.role {
            Role::Clerk => {
                let snap = self.readers.as_ref().map(|r| r.snapshot());
                crate::clerk::ui(ui, &mut self.clerk, s, snap.as_ref(), &self.opts, &mut cmds);
                if self.clerk.busy() {
                    if let Some(r) = &self.readers {
                        r.busy.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            Role::CaAdmin => crate::ca::ui(ui, &mut self.ca, &mut cmds),
            Role::Auditor => crate::auditor::ui(ui, &mut self.auditor, &self.opts, &mut cmds),
        }
        for c in cmds {
            self.send(c);
        }
        if self.busy() {
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
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
