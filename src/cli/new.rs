//! `wasmcalls new NAME --lang rust|python|js`: a bot project that runs at once.
//!
//! It holds the bot's source (a `/play` and `/stop` bot to grow from), the SDK and the
//! contract (`wit/`) vendored — the project builds with nothing but its toolchain —
//! a config on the loopback with least-privilege grants, sample media, and a scenario
//! test. `wasmcalls dev` in it builds, runs and reloads on save; `wasmcalls test` runs
//! the scenario.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

#[derive(Args)]
pub struct NewArgs {
    /// The bot's name: its folder, package and plugin name
    name: String,
    /// The language it is written in
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// The contract, as the SDKs were built against it.
const WIT: [(&str, &str); 2] =
    [("bot.wit", include_str!("../../wit/v0.2/bot.wit")), ("types.wit", include_str!("../../wit/v0.2/types.wit"))];
const CONFIG: &str = include_str!("templates/wasmcalls.toml");
const SCENARIO: &str = include_str!("templates/bot.test.toml");
const MEDIA: &[u8] = include_bytes!("../../examples/media/chimes.opus");

const RUST_LIB: &str = include_str!("templates/rust/lib.rs");
const RUST_CARGO: &str = include_str!("templates/rust/Cargo.toml");
const RUST_SDK: &str = include_str!("../../plugins/sdk/src/lib.rs");
const RUST_SDK_CARGO: &str = include_str!("../../plugins/sdk/Cargo.toml");

const PY_APP: &str = include_str!("templates/python/app.py");
const PY_SDK: &str = include_str!("../../sdk/python/wasmcalls_bot/__init__.py");

const JS_BOT: &str = include_str!("templates/js/bot.js");
const JS_PACKAGE: &str = include_str!("templates/js/package.json");
const JS_SDK: &str = include_str!("../../sdk/js/wasmcalls-bot.js");
const JS_SDK_TYPES: &str = include_str!("../../sdk/js/wasmcalls-bot.d.ts");
const JS_TYPES: [(&str, &str); 10] = [
    ("bot-with-audio.d.ts", include_str!("../../sdk/js/types/bot-with-audio.d.ts")),
    ("interfaces/wasmcalls-bot-audio.d.ts", include_str!("../../sdk/js/types/interfaces/wasmcalls-bot-audio.d.ts")),
    (
        "interfaces/wasmcalls-bot-audio-events.d.ts",
        include_str!("../../sdk/js/types/interfaces/wasmcalls-bot-audio-events.d.ts"),
    ),
    ("interfaces/wasmcalls-bot-calls.d.ts", include_str!("../../sdk/js/types/interfaces/wasmcalls-bot-calls.d.ts")),
    ("interfaces/wasmcalls-bot-chat.d.ts", include_str!("../../sdk/js/types/interfaces/wasmcalls-bot-chat.d.ts")),
    ("interfaces/wasmcalls-bot-config.d.ts", include_str!("../../sdk/js/types/interfaces/wasmcalls-bot-config.d.ts")),
    ("interfaces/wasmcalls-bot-handler.d.ts", include_str!("../../sdk/js/types/interfaces/wasmcalls-bot-handler.d.ts")),
    ("interfaces/wasmcalls-bot-logging.d.ts", include_str!("../../sdk/js/types/interfaces/wasmcalls-bot-logging.d.ts")),
    ("interfaces/wasmcalls-bot-state.d.ts", include_str!("../../sdk/js/types/interfaces/wasmcalls-bot-state.d.ts")),
    ("interfaces/wasmcalls-bot-types.d.ts", include_str!("../../sdk/js/types/interfaces/wasmcalls-bot-types.d.ts")),
];

/// A name usable as a folder, a package and a plugin name.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("{name:?}: a bot's name is 1–64 lowercase letters, digits, '-' or '_', starting with a letter");
    }
    Ok(())
}

fn write(root: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: NewArgs) -> Result<()> {
    let root = PathBuf::from(&args.name);
    let next = scaffold(&root, &args.name, args.lang)?;
    let name = &args.name;
    println!("Created {} ({}).", root.display(), next);
    println!("  cd {name}");
    println!("  wasmcalls dev      # builds it, runs it on the loopback, rebuilds and reloads on save");
    println!("  wasmcalls test     # runs tests/*.test.toml");
    println!("  wasmcalls loopback say --chat -1001185324811 \"/play media/chimes.opus\"   # while dev runs");
    Ok(())
}

/// Writes bot project `name` in `lang` into the new folder `root`; returns what its
/// build needs.
pub fn scaffold(root: &Path, name: &str, lang: Lang) -> Result<&'static str> {
    check_name(name)?;
    if root.exists() {
        bail!("{} already exists; pick another name or remove it", root.display());
    }
    let root = root.to_path_buf();
    let fill = |t: &str, wasm: &str, build_command: &str| {
        t.replace("{{name}}", name).replace("{{wasm}}", wasm).replace("{{build_command}}", build_command)
    };
    let (wasm, build_command, next) = match lang {
        Lang::Rust => {
            let artifact = format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"));
            write(&root, "src/lib.rs", fill(RUST_LIB, "", "").as_bytes())?;
            write(&root, "Cargo.toml", fill(RUST_CARGO, "", "").as_bytes())?;
            // The SDK from this repository's workspace, made a crate of its own here.
            let sdk = RUST_SDK.replace("path: \"../../wit/v0.2\"", "path: \"../wit\"");
            let sdk_cargo = RUST_SDK_CARGO
                .replace("edition.workspace = true", "edition = \"2024\"")
                .replace("version.workspace = true", "version = \"0.2.2\"")
                .replace("publish.workspace = true", "publish = false")
                .replace("license.workspace = true", "license = \"MIT OR Apache-2.0\"")
                .replace("serde.workspace = true", "serde = { version = \"1\", features = [\"derive\"] }")
                .replace("serde_json.workspace = true", "serde_json = \"1\"");
            write(&root, "sdk/src/lib.rs", sdk.as_bytes())?;
            write(&root, "sdk/Cargo.toml", sdk_cargo.as_bytes())?;
            (artifact, String::new(), "needs the wasm32-wasip2 target: `rustup target add wasm32-wasip2`")
        }
        Lang::Python => {
            write(&root, "app.py", fill(PY_APP, "", "").as_bytes())?;
            write(&root, "wasmcalls_bot/__init__.py", PY_SDK.as_bytes())?;
            let cmd =
                "build_command = \"componentize-py -d wit -w bot-with-audio componentize app -p . -o bot.wasm\"\n";
            (
                "bot.wasm".to_owned(),
                cmd.to_owned(),
                "needs componentize-py on the PATH: `pip install componentize-py==0.25.1`",
            )
        }
        Lang::Js => {
            write(&root, "bot.js", fill(JS_BOT, "", "").as_bytes())?;
            write(&root, "package.json", fill(JS_PACKAGE, "", "").as_bytes())?;
            write(&root, "wasmcalls-bot.js", JS_SDK.as_bytes())?;
            write(&root, "wasmcalls-bot.d.ts", JS_SDK_TYPES.as_bytes())?;
            for (rel, text) in JS_TYPES {
                write(&root, &format!("types/{rel}"), text.as_bytes())?;
            }
            let cmd = "build_command = \"npm install --silent --no-audit --no-fund && npm run build --silent\"\n";
            ("bot.wasm".to_owned(), cmd.to_owned(), "needs Node.js and npm (componentize-qjs comes with `npm install`)")
        }
    };
    for (file, text) in WIT {
        write(&root, &format!("wit/{file}"), text.as_bytes())?;
    }
    write(&root, "wasmcalls.toml", fill(CONFIG, &wasm, &build_command).as_bytes())?;
    write(&root, "tests/bot.test.toml", fill(SCENARIO, "", "").as_bytes())?;
    write(&root, "media/chimes.opus", MEDIA)?;
    write(&root, ".gitignore", b"/target/\n/node_modules/\n/bot.wasm\n/.wasmcalls/\n/heard/\n")?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["radio", "my-bot", "bot_2"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "My", "2bot", "a b", "../x", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
