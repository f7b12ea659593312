//! The application's language, from the portal's display name to what ConfigMgr takes.
//!
//! `New-CMApplication` has no `-Language`: Software Center's language is `-DefaultLanguageId`, a
//! decimal LCID (1033 = en-US), and a deployment type's languages are culture names
//! (`-AddLanguage 'en-US'`). The portal sends Windows display names such as
//! `English(United States)`; a culture name (`en-US`) or a decimal LCID is accepted too.

/// A language ConfigMgr understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Language {
    /// The Windows display name, e.g. `English (United States)`.
    pub display: &'static str,
    /// The culture name, e.g. `en-US`.
    pub culture: &'static str,
    /// The Windows LCID, e.g. 1033.
    pub lcid: u32,
}

/// The languages the connector maps (Windows display name, culture, LCID).
const LANGUAGES: &[(&str, &str, u32)] = &[
    ("Arabic (Saudi Arabia)", "ar-SA", 1025),
    ("Bulgarian (Bulgaria)", "bg-BG", 1026),
    ("Catalan (Catalan)", "ca-ES", 1027),
    ("Chinese (Taiwan)", "zh-TW", 1028),
    ("Czech (Czech Republic)", "cs-CZ", 1029),
    ("Danish (Denmark)", "da-DK", 1030),
    ("German (Germany)", "de-DE", 1031),
    ("Greek (Greece)", "el-GR", 1032),
    ("English (United States)", "en-US", 1033),
    ("Finnish (Finland)", "fi-FI", 1035),
    ("French (France)", "fr-FR", 1036),
    ("Hebrew (Israel)", "he-IL", 1037),
    ("Hungarian (Hungary)", "hu-HU", 1038),
    ("Icelandic (Iceland)", "is-IS", 1039),
    ("Italian (Italy)", "it-IT", 1040),
    ("Japanese (Japan)", "ja-JP", 1041),
    ("Korean (Korea)", "ko-KR", 1042),
    ("Dutch (Netherlands)", "nl-NL", 1043),
    ("Norwegian, Bokmål (Norway)", "nb-NO", 1044),
    ("Polish (Poland)", "pl-PL", 1045),
    ("Portuguese (Brazil)", "pt-BR", 1046),
    ("Romanian (Romania)", "ro-RO", 1048),
    ("Russian (Russia)", "ru-RU", 1049),
    ("Croatian (Croatia)", "hr-HR", 1050),
    ("Slovak (Slovakia)", "sk-SK", 1051),
    ("Swedish (Sweden)", "sv-SE", 1053),
    ("Thai (Thailand)", "th-TH", 1054),
    ("Turkish (Turkey)", "tr-TR", 1055),
    ("Ukrainian (Ukraine)", "uk-UA", 1058),
    ("Slovenian (Slovenia)", "sl-SI", 1060),
    ("Estonian (Estonia)", "et-EE", 1061),
    ("Latvian (Latvia)", "lv-LV", 1062),
    ("Lithuanian (Lithuania)", "lt-LT", 1063),
    ("Vietnamese (Vietnam)", "vi-VN", 1066),
    ("Hindi (India)", "hi-IN", 1081),
    ("Chinese (People's Republic of China)", "zh-CN", 2052),
    ("German (Switzerland)", "de-CH", 2055),
    ("English (United Kingdom)", "en-GB", 2057),
    ("Spanish (Mexico)", "es-MX", 2058),
    ("French (Belgium)", "fr-BE", 2060),
    ("Italian (Switzerland)", "it-CH", 2064),
    ("Dutch (Belgium)", "nl-BE", 2067),
    ("Portuguese (Portugal)", "pt-PT", 2070),
    ("Serbian (Latin, Serbia)", "sr-Latn-RS", 9242),
    ("German (Austria)", "de-AT", 3079),
    ("English (Australia)", "en-AU", 3081),
    ("Spanish (Spain)", "es-ES", 3082),
    ("French (Canada)", "fr-CA", 3084),
    ("English (Canada)", "en-CA", 4105),
    ("French (Switzerland)", "fr-CH", 4108),
    ("English (Ireland)", "en-IE", 6153),
    ("English (India)", "en-IN", 16393),
];

/// Case and white space do not matter in display names: `English(United States)` is
/// `English (United States)`.
fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The language named by a display name, a culture name, or a decimal LCID.
pub fn lookup(text: &str) -> Option<Language> {
    let wanted = normalize(text);
    let by_lcid: Option<u32> = text.trim().parse().ok();
    LANGUAGES
        .iter()
        .find(|(display, culture, lcid)| {
            normalize(display) == wanted
                || culture.eq_ignore_ascii_case(text.trim())
                || by_lcid == Some(*lcid)
        })
        .map(|&(display, culture, lcid)| Language {
            display,
            culture,
            lcid,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_language_and_its_other_spellings() {
        let en_us = Language {
            display: "English (United States)",
            culture: "en-US",
            lcid: 1033,
        };
        for spelling in [
            "English(United States)",
            "english (united states)",
            "en-US",
            "EN-us",
            "1033",
        ] {
            assert_eq!(lookup(spelling), Some(en_us), "{spelling}");
        }
        assert_eq!(lookup("German (Germany)").map(|l| l.lcid), Some(1031));
        assert_eq!(lookup("Klingon"), None);
        assert_eq!(lookup(""), None);
    }

    #[test]
    fn the_table_has_no_duplicates() {
        for (i, a) in LANGUAGES.iter().enumerate() {
            for b in &LANGUAGES[i + 1..] {
                assert!(
                    normalize(a.0) != normalize(b.0) && a.1 != b.1 && a.2 != b.2,
                    "{a:?} vs {b:?}"
                );
            }
        }
    }
}
