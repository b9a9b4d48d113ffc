//! docs/commands.md lists exactly the commands of the table: the section
//! between the markers is generated from `COMMANDS`, and this test fails
//! when the two disagree. `UPDATE_DOCS=1 cargo test --test unit_commands_doc`
//! rewrites the section.

use distcache_core::command::table::{COMMANDS, flags};

const BEGIN: &str =
    "<!-- BEGIN GENERATED COMMAND TABLE (crates/core/tests/unit_commands_doc.rs) -->";
const END: &str = "<!-- END GENERATED COMMAND TABLE -->";

fn generated() -> String {
    let mut out = String::new();
    out.push_str(
        "| command | arity | group | role | flags | keys (first, last, step) | what it does |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for spec in COMMANDS {
        let mut f = Vec::new();
        for (bit, name) in [
            (flags::WRITE, "write"),
            (flags::READONLY, "readonly"),
            (flags::DENYOOM, "denyoom"),
            (flags::FAST, "fast"),
            (flags::TRANSACTION, "transaction"),
            (flags::RANDOM_OUTPUT, "random output"),
            (flags::UNORDERED_OUTPUT, "unordered output"),
            (flags::PUBSUB, "pubsub"),
            (flags::BLOCKING, "blocking"),
            (flags::SCRIPTING, "scripting"),
        ] {
            if spec.has(bit) {
                f.push(name);
            }
        }
        let (first, last, step) = spec.legacy_key_range();
        out.push_str(&format!(
            "| `{}` | {} | {} | {:?} | {} | {}, {}, {} | {} |\n",
            spec.name.to_uppercase(),
            spec.arity,
            spec.group.name(),
            spec.role(),
            f.join(", "),
            first,
            last,
            step,
            spec.summary
        ));
    }
    out
}

#[test]
fn docs_commands_md_lists_exactly_the_commands_of_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands.md");
    let doc = std::fs::read_to_string(&path).expect("docs/commands.md exists");
    let (head, rest) = doc.split_once(BEGIN).expect("begin marker");
    let (_, tail) = rest.split_once(END).expect("end marker");
    let want = format!("{head}{BEGIN}\n{}{END}{tail}", generated());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    assert!(
        doc == want,
        "docs/commands.md disagrees with the command table; run UPDATE_DOCS=1 cargo test -p distcache-core --test unit_commands_doc"
    );
}
