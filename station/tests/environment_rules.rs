//! The process environment carries no secret and is never changed by our code.
//!
//! - Secrets never come from the environment (docs/security.md): no source file of the
//!   workspace reads an environment variable whose name says it holds a password, PIN, PUK or
//!   secret (`std::env::var`, `var_os`, `env!`, `option_env!`, clap's `env = "…"`), and a read
//!   whose name is not a literal or a `const` of the same file must be listed here with its
//!   reason.
//! - No code changes its own process environment: SoftHSM2's configuration (and any PKCS#11
//!   module's) is given to a process before it starts (`hsm::process_env`), because `setenv` in
//!   a running, threaded process races with every `getenv`.

use std::path::{Path, PathBuf};

/// Reads of a variable named at run time, each checked by hand: (file suffix, call, why).
const DYNAMIC_READS: &[(&str, &str, &str)] = &[(
    "hsm/src/process_env.rs",
    "var_os(name)",
    "compares the PKCS#11 module's configured environment (SOFTHSM2_CONF) before start-up",
)];

const CALLS: &[&str] = &[
    "env::var(",
    "env::var_os(",
    "env!(",
    "option_env!(",
    "env = ",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') && name != "fuzz" {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["PASSWORD", "PIN", "PUK", "SECRET"]
        .iter()
        .any(|w| n.contains(w))
}

/// The value of `const NAME: &str = "…";` in `text`, if there is one.
fn const_value<'a>(text: &'a str, ident: &str) -> Option<&'a str> {
    let start = text.find(&format!("const {ident}: &str = \""))?;
    let rest = &text[start..];
    let open = rest.find('"')? + 1;
    let close = rest[open..].find('"')?;
    Some(&rest[open..open + close])
}

/// Every environment read in `text` that breaks the rule, as `line: code (why)`.
fn offences(path: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for call in CALLS {
            let mut from = 0;
            while let Some(at) = code[from..].find(call) {
                let arg = code[from + at + call.len()..].trim_start();
                from += at + call.len();
                let why = if let Some(lit) = arg.strip_prefix('"') {
                    let name = lit.split('"').next().unwrap_or("");
                    is_secret_name(name).then(|| format!("reads {name}"))
                } else {
                    let ident: String = arg
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    let last = ident.rsplit("::").next().unwrap_or("");
                    match const_value(text, last) {
                        Some(v) => is_secret_name(v).then(|| format!("reads {v} ({last})")),
                        None if *call == "env = " => None, // not clap's attribute
                        None if DYNAMIC_READS
                            .iter()
                            .any(|(f, c, _)| path.ends_with(f) && code.contains(c)) =>
                        {
                            None
                        }
                        None => Some(format!(
                            "reads a variable named at run time ({ident}); name it with a \
                             literal or list it in DYNAMIC_READS"
                        )),
                    }
                };
                if let Some(why) = why {
                    out.push(format!("{path}:{}: {} ({why})", i + 1, code.trim()));
                }
            }
        }
    }
    out
}

#[test]
fn no_source_reads_a_password_pin_puk_or_secret_from_the_environment() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let mut files = Vec::new();
    rust_files(workspace, &mut files);
    assert!(files.len() > 50, "found the workspace's sources");
    let me = Path::new(file!()).file_name().expect("own name");
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| f.file_name() != Some(me))
        // Test code may set such a variable on a child to show it is ignored; it must not be
        // read by the code under test, which is what lives under src/.
        .filter(|f| f.components().any(|c| c.as_os_str() == "src"))
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            let shown = f.strip_prefix(workspace).unwrap_or(f).display().to_string();
            Some(offences(&shown, &text))
        })
        .flatten()
        .collect();
    assert!(
        offenders.is_empty(),
        "secrets read from the environment:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_scanner_finds_each_form_of_a_secret_read() {
    let text = "const K: &str = \"IDSTATION_HSM_PIN\";\n\
                fn a() { std::env::var(\"IDSTATION_PASSWORD\"); }\n\
                fn b() { std::env::var_os(K); }\n\
                fn c() { let n = \"X\"; std::env::var(n); }\n\
                fn d() { env!(\"BUILD_SECRET\"); }\n\
                #[arg(long, env = \"IDSTATION_PUK\")]\n\
                fn e() { std::env::var(\"HOME\"); env!(\"CARGO_MANIFEST_DIR\"); }\n";
    let found = offences("x/src/lib.rs", text);
    assert_eq!(found.len(), 5, "{found:#?}");
    for (line, what) in [
        (2, "IDSTATION_PASSWORD"),
        (3, "IDSTATION_HSM_PIN"),
        (4, "run time"),
        (5, "BUILD_SECRET"),
        (6, "IDSTATION_PUK"),
    ] {
        assert!(
            found
                .iter()
                .any(|f| f.starts_with(&format!("x/src/lib.rs:{line}:")) && f.contains(what)),
            "{line} {what}: {found:#?}"
        );
    }
}

#[test]
fn no_source_file_calls_set_var_or_remove_var() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let mut files = Vec::new();
    rust_files(workspace, &mut files);
    assert!(files.len() > 50, "found the workspace's sources");
    let needles = [
        ["env::", "set_var("].concat(),
        ["env::", "remove_var("].concat(),
    ];
    let offenders: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            text.lines()
                .enumerate()
                .find(|(_, l)| {
                    let code = l.split("//").next().unwrap_or("");
                    needles.iter().any(|n| code.contains(n.as_str()))
                })
                .map(|(i, l)| format!("{}:{}: {}", f.display(), i + 1, l.trim()))
        })
        .collect();
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}
