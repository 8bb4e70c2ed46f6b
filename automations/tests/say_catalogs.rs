//! The web UI says every saying of the engine in both its languages: each catalog (ui/i18n/en.js
//! and zh.js) has a `say.<code>` text for every code of `hearth_automations::say::SAYINGS`, names
//! only that saying's values, and has no text for a code the engine does not have.

use std::collections::BTreeMap;
use std::path::Path;

use hearth_automations::say::SAYINGS;

/// The `"say.<code>": "<text>"` lines of a catalog.
fn sayings_of(file: &str) -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/i18n").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("\"say.") else { continue };
        let (code, value) =
            rest.split_once("\":").unwrap_or_else(|| panic!("{file}:{}: not `\"key\": \"text\"`", n + 1));
        let value: String = serde_json::from_str(value.trim().trim_end_matches(','))
            .unwrap_or_else(|e| panic!("{file}:{}: the text is not a JSON string: {e}", n + 1));
        assert!(out.insert(code.to_owned(), value).is_none(), "{file}:{}: say.{code} twice", n + 1);
    }
    out
}

fn placeholders(text: &str) -> Vec<&str> {
    text.split('{')
        .skip(1)
        .filter_map(|p| p.split_once('}').map(|(name, _)| name))
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect()
}

#[test]
fn both_catalogs_say_every_saying_and_nothing_else() {
    for file in ["en.js", "zh.js"] {
        let catalog = sayings_of(file);
        let mut problems = Vec::new();
        for s in SAYINGS {
            match catalog.get(s.code) {
                None => problems.push(format!("no say.{} (English: {:?})", s.code, s.english)),
                Some(text) => {
                    for name in placeholders(text) {
                        if !s.fields.contains(&name) {
                            problems.push(format!("say.{} names {{{name}}}; its values are {:?}", s.code, s.fields));
                        }
                    }
                }
            }
        }
        for code in catalog.keys() {
            if !SAYINGS.iter().any(|s| s.code == code) {
                problems.push(format!("say.{code} is not a saying of the engine"));
            }
        }
        assert!(problems.is_empty(), "ui/i18n/{file}:\n{}", problems.join("\n"));
        assert_eq!(catalog.len(), SAYINGS.len());
    }
}
