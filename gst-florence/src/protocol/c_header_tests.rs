//! florence.h lists, for C applications, the same names as this module: every
//! field, error kind and meta name of the module is in the header under the
//! macro its name gives, and the header defines no other.

use std::collections::BTreeSet;

use super::{
    ErrorKind, MESSAGE_NAME, META_NAME, MODEL_MESSAGE_NAME, ModelField, REGION_PARAMS_NAME,
    REQUEST_META_NAME, RegionField, RequestField, ResultField,
};

const HEADER: &str = include_str!("../../include/gst/florence/florence.h");

/// The header's `#define FLORENCE_... "value"` lines as (macro, value).
fn header_defines() -> BTreeSet<(String, String)> {
    HEADER
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("#define ")?;
            let (name, rest) = rest.split_once(char::is_whitespace)?;
            let value = rest.trim_start().strip_prefix('"')?;
            let (value, _) = value.split_once('"')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// `prefix` and a name as a C macro: "max-new-tokens" -> PREFIX_MAX_NEW_TOKENS.
fn macro_name(prefix: &str, name: &str) -> String {
    format!("{prefix}_{}", name.to_uppercase().replace('-', "_"))
}

/// Every name of the protocol module, as the header should define it.
fn module_defines() -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for f in ResultField::ALL {
        all.insert((macro_name("FLORENCE_FIELD", f.name()), f.name().to_owned()));
    }
    for f in RequestField::ALL {
        all.insert((
            macro_name("FLORENCE_REQUEST", f.name()),
            f.name().to_owned(),
        ));
    }
    for f in RegionField::ALL {
        all.insert((macro_name("FLORENCE_REGION", f.name()), f.name().to_owned()));
    }
    for k in ErrorKind::ALL {
        all.insert((macro_name("FLORENCE_ERROR", k.name()), k.name().to_owned()));
    }
    // "model-dir" -> FLORENCE_MODEL_DIR: the prefix already says "model".
    for f in ModelField::ALL {
        let short = f.name().trim_start_matches("model-");
        all.insert((macro_name("FLORENCE_MODEL", short), f.name().to_owned()));
    }
    for (m, name) in [
        ("FLORENCE_MODEL_MESSAGE", MODEL_MESSAGE_NAME),
        ("FLORENCE_CAPTION_META", META_NAME),
        ("FLORENCE_CAPTION_MESSAGE", MESSAGE_NAME),
        ("FLORENCE_REQUEST_META", REQUEST_META_NAME),
        ("FLORENCE_REGION_PARAMS", REGION_PARAMS_NAME),
    ] {
        all.insert((m.to_owned(), name.to_owned()));
    }
    all
}

#[test]
fn the_header_and_the_protocol_module_name_the_same_fields() {
    let header = header_defines();
    let module = module_defines();
    let missing: Vec<_> = module.difference(&header).collect();
    let extra: Vec<_> = header.difference(&module).collect();
    assert!(
        missing.is_empty(),
        "florence.h lacks these (macro, name) of the protocol module: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "florence.h defines these (macro, name) that the protocol module does not have: {extra:?}"
    );
}

#[test]
fn the_header_reader_sees_every_define() {
    // A header whose lines the reader skipped would make the test above vacuous.
    let defines = HEADER
        .lines()
        .filter(|l| l.trim_start().starts_with("#define FLORENCE_"))
        .count();
    assert_eq!(header_defines().len(), defines);
    assert!(defines > 30, "{defines}");
}
