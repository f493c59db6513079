//! Hand-made texts aimed at the pre-tokenizer's corners: whitespace and digit runs, contractions
//! in mixed case, combining marks, emoji sequences, special-token look-alikes.

/// Short texts, each exercising one corner.
pub fn corner_cases() -> Vec<String> {
    let mut texts: Vec<String> = [
        "",
        " ",
        "  ",
        "\n",
        "\r\n",
        " \n ",
        "\t\t x",
        "a  b",
        "a \n b",
        "a\n\n\nb",
        "x   ",
        "   x",
        "1",
        "12",
        "123",
        "1234",
        "12345678901",
        " 1234",
        "a1b22c333",
        "١٢٣٤٥",
        "१२३४",
        "Ⅻ½²",
        "don't",
        "DON'T",
        "Don'T",
        "we'Re",
        "WE'LL",
        "I'm",
        "i'M",
        "you'VE",
        "she'D",
        "it'S",
        "it'ſ",
        "'s",
        " 's",
        "''s",
        "o'clock",
        "rock'n'roll",
        "HELLO world",
        "helloWORLD",
        "CamelCaseWord",
        "XMLHttpRequest",
        "ǅemal",
        "ǈubljana",
        "ʰʲʷ",
        "ÀÉÎ",
        "naïve café",
        "e\u{301}",
        "\u{301}",
        " \u{301}x",
        "A\u{301}",
        "\u{301}A",
        "!\u{301}",
        "a\u{301}\u{302}B",
        "Ünïcödé ÜBER",
        "Straße STRASSE",
        "Ǆ",
        "ﬁ ﬂ",
        "🙂",
        "👍🏽",
        "👨‍👩‍👧‍👦",
        "🇫🇷🇯🇵",
        "a🙂b",
        " 🙂 ",
        "#1️⃣",
        "❤️‍🔥",
        "<|start|>",
        "<|end",
        "<|reserved_200018|>",
        "<|endofprompt|>",
        "< |start| >",
        "<<|start|>>",
        "a/b//c\n/\r\n",
        "!!!\n\n",
        " ?!/\r\n\r\n",
        "--->",
        "\u{a0}\u{a0}x",
        "\u{2028}\u{2029}",
        "\u{3000}日本",
        "\u{feff}bom",
        "\u{0}\u{1}\u{7f}",
        "tab\tsep\tvalues\t",
        "    indented\n        code\n",
        "x\u{200b}y",
        "\u{85}next line",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Long runs: past 1 KiB a piece takes the rank-bucket path.
    texts.push("-".repeat(3000));
    texts.push(" ".repeat(3000));
    texts.push("x ".repeat(600) + &" ".repeat(2000) + "y");
    texts.push("日".repeat(1500));
    texts.push("日本語の文章".repeat(200));
    texts.push("9".repeat(1000));
    texts.push("\n".repeat(300) + &" \n".repeat(300));
    texts.push("aB".repeat(500));
    texts.push("é".repeat(300) + &"\u{301}".repeat(300));
    texts.push("🙂".repeat(300));
    texts
}
