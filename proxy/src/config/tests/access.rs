//! Rejections in the sections that decide who reaches what: providers,
//! static identities, grants, budgets and prices.

use super::*;

#[test]
fn provider_checks() {
    let with = |from: &str, to: &str| PROVIDER.replace(from, to);
    rejects(
        &with("kind = \"openai\"", "kind = \"opena\""),
        4,
        "providers[0].kind",
        "`opena` is not one of \"openai\", \"anthropic\"",
    );
    for (url, needle) in [
        ("ftp://x", "scheme `ftp`"),
        ("api.openai.com", "not a URL"),
        ("https://", "no host"),
        ("https://h:99999", "port `99999`"),
        ("https://user:pw@h", "credentials"),
        ("https://h/v1?key=abc", "query"),
    ] {
        let e = rejects(
            &with("https://api.openai.com", url),
            5,
            "providers[0].base_url",
            needle,
        );
        assert!(
            !e.message.contains("pw@") && !e.message.contains("key=abc"),
            "{e}"
        );
    }
    rejects(
        &with("${OPENAI_API_KEY}", ""),
        6,
        "providers[0].api_key",
        "must not be empty",
    );
    let e = rejects(
        &with("${OPENAI_API_KEY}", "sk-secret\\n"),
        6,
        "providers[0].api_key",
        "line break",
    );
    assert!(!e.message.contains("sk-secret"), "{e}");
    rejects(
        &with("api_key = \"${OPENAI_API_KEY}\"\n", ""),
        2,
        "providers[0].api_key",
        "required",
    );
    rejects(
        &with("[\"gpt-4.1-mini\"]", "[]"),
        7,
        "providers[0].models",
        "at least one",
    );
    rejects(
        &with("[\"gpt-4.1-mini\"]", "[\"a\", \"a\"]"),
        7,
        "providers[0].models[1]",
        "listed twice",
    );
    rejects(
        &with("name = \"openai\"", "name = \"open/ai\""),
        3,
        "providers[0].name",
        "`/`",
    );
    let dup = format!("{PROVIDER}{}", PROVIDER.replace("gpt-4.1-mini", "other"));
    rejects(
        &dup,
        10,
        "providers[1].name",
        "provider `openai` is already defined at line 3",
    );
}

#[test]
fn static_identity_checks() {
    let both = r#"[identity]
unknown = "anonymous"

[[identity.static]]
cidr = "10.0.0.0/8"
login = "a@b"
tags = ["tag:x"]
"#;
    rejects(
        both,
        4,
        "identity.static[0]",
        "exactly one of `login` or `tags`",
    );
    rejects(
        "[[identity.static]]\ncidr = \"10.0.0.0/8\"\n",
        1,
        "identity.static[0]",
        "exactly one of",
    );
    rejects(
        "[[identity.static]]\ncidr = \"10.0.0.0/33\"\nlogin = \"a\"\n",
        2,
        "identity.static[0].cidr",
        "not an address or CIDR",
    );
    rejects(
        "[[identity.static]]\ncidr = \"::1\"\ntags = [\"k8s\"]\n",
        3,
        "identity.static[0].tags[0]",
        "tag:NAME",
    );
    rejects(
        "[identity]\nunknown = \"allow\"\n",
        2,
        "identity.unknown",
        "not one of \"reject\", \"anonymous\"",
    );
    let c = ok(r#"[[identity.static]]
cidr = "100.64.0.7"
tags = ["tag:k8s", "tag:ci", "tag:k8s"]
"#);
    assert_eq!(
        c.identity.static_[0].cidr,
        "100.64.0.7/32".parse::<ipnet::IpNet>().unwrap()
    );
    assert_eq!(
        c.identity.static_[0].who,
        Who::Tags(vec!["tag:ci".to_owned(), "tag:k8s".to_owned()])
    );
}

#[test]
fn grant_and_budget_checks() {
    rejects(
        "[[grants]]\nsrc = []\nmodels = [\"*\"]\n",
        2,
        "grants[0].src",
        "at least one",
    );
    rejects(
        "[[grants]]\nsrc = [\"*\"]\n",
        1,
        "grants[0].models",
        "required",
    );
    rejects(
        "[[grants]]\nsrc = [\"*\"]\nmodels = [\"\"]\n",
        3,
        "grants[0].models[0]",
        "must not be empty",
    );
    rejects(
        "[[grants]]\nsrc = [\"*\"]\nmodels = [\"gpt-4.1-mini\"]\n",
        3,
        "grants[0].models[0]",
        "`*/gpt-4.1-mini`",
    );
    let budget = "[[budgets]]\nname = \"b\"\ntag = \"tag:k8s\"\ntokens = 5\nwindow = \"1h30m\"\n";
    assert_eq!(ok(budget).budgets[0].window, Duration::from_secs(5400));
    rejects(
        &budget.replace("tokens = 5", "identity = \"a@b\"\ntokens = 5"),
        1,
        "budgets[0]",
        "exactly one of `tag` or `identity`",
    );
    rejects(
        &budget.replace("tag = \"tag:k8s\"\n", ""),
        1,
        "budgets[0]",
        "exactly one of",
    );
    rejects(
        &budget.replace("tag:k8s", "k8s"),
        3,
        "budgets[0].tag",
        "tag:NAME",
    );
    rejects(
        &budget.replace("tokens = 5", "tokens = 0"),
        4,
        "budgets[0].tokens",
        "greater than 0",
    );
    rejects(
        &budget.replace("1h30m", "0s"),
        5,
        "budgets[0].window",
        "longer than 0",
    );
    rejects(
        &budget.replace("1h30m", "1 week"),
        5,
        "budgets[0].window",
        "unknown unit `week`",
    );
    rejects(
        &format!("{budget}on_exceed = \"block\"\n"),
        6,
        "budgets[0].on_exceed",
        "\"alert\", \"reject\"",
    );
    rejects(
        &format!("{budget}\n{budget}"),
        8,
        "budgets[1].name",
        "budget `b` is already defined",
    );
}

#[test]
fn price_checks() {
    let typo = format!("{PROVIDER}\n[prices.\"gpt-4.1-mni\"]\ninput = 1\noutput = 2\n");
    rejects(
        &typo,
        9,
        "prices.\"gpt-4.1-mni\"",
        "no provider offers model `gpt-4.1-mni`",
    );
    let qualified =
        format!("{PROVIDER}\n[prices.\"openai/gpt-4.1-mini\"]\ninput = 1\noutput = 2\n");
    rejects(
        &qualified,
        9,
        "prices.\"openai/gpt-4.1-mini\"",
        "keyed by the bare model name: use `gpt-4.1-mini`",
    );
    let negative = format!("{PROVIDER}\n[prices.\"gpt-4.1-mini\"]\ninput = 1\noutput = -2\n");
    rejects(
        &negative,
        11,
        "prices.\"gpt-4.1-mini\".output",
        "non-negative",
    );
    let missing = format!("{PROVIDER}\n[prices.\"gpt-4.1-mini\"]\ninput = 1\n");
    rejects(&missing, 9, "prices.\"gpt-4.1-mini\".output", "required");
    let dotted =
        format!("{PROVIDER}\n[prices]\n\"gpt-4.1-mini\".input = 1\n\"gpt-4.1-mini\".output = 1\n");
    assert_eq!(ok(&dotted).prices["gpt-4.1-mini"].output, 1.0);
}

#[test]
fn media_prices_need_no_token_prices_and_are_checked_like_them() {
    let whisper = format!("{PROVIDER}\n[prices.\"gpt-4.1-mini\"]\naudio_minute = 0.006\n");
    let price = &ok(&whisper).prices["gpt-4.1-mini"];
    assert_eq!((price.input, price.output), (0.0, 0.0));
    assert_eq!(price.media.audio_minute, Some(0.006));
    let images = format!(
        "{PROVIDER}\n[prices.\"gpt-4.1-mini\"]\nimage = 0.04\nimages = {{ \"hd  1024x1792\" = 0.12 }}\n"
    );
    let media = ok(&images).prices["gpt-4.1-mini"].media.clone();
    assert_eq!(media.images.get("hd 1024x1792"), Some(&0.12));
    assert_eq!((media.image, media.characters), (Some(0.04), None));
    let negative = format!("{PROVIDER}\n[prices.\"gpt-4.1-mini\"]\ncharacters = -15\n");
    rejects(
        &negative,
        10,
        "prices.\"gpt-4.1-mini\".characters",
        "non-negative number of USD per million characters",
    );
    let three_words = format!(
        "{PROVIDER}\n[prices.\"gpt-4.1-mini\"]\nimages = {{ \"hd wide 1024x1792\" = 1 }}\n"
    );
    rejects(
        &three_words,
        10,
        "prices.\"gpt-4.1-mini\".images.\"hd wide 1024x1792\"",
        "names a size, a quality, or both",
    );
}

#[test]
fn audio_and_image_token_prices_are_optional_figures() {
    let audio = format!(
        "{PROVIDER}\n[prices.\"gpt-4.1-mini\"]\ninput = 2.5\noutput = 10\naudio_input = 40\nimage_input = 10\naudio_output = 80\n"
    );
    let price = &ok(&audio).prices["gpt-4.1-mini"];
    let parts = (price.audio_input, price.image_input, price.audio_output);
    assert_eq!(parts, (Some(40.0), Some(10.0), Some(80.0)));
    let negative = format!(
        "{PROVIDER}\n[prices.\"gpt-4.1-mini\"]\ninput = 1\noutput = 1\naudio_output = -1\n"
    );
    rejects(
        &negative,
        12,
        "prices.\"gpt-4.1-mini\".audio_output",
        "non-negative number of USD per million tokens",
    );
}
