//! vlmcsd-style durations: a number with an optional s/m/h/d/w suffix
//! (minutes when bare), rounded down to whole minutes.

/// Minutes in `text`, e.g. `120`, `2h`, `7d`, `1w`, `90s` (→ 1).
pub fn parse_minutes(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let (number, unit_seconds) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let unit = match c.to_ascii_lowercase() {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => {
                    return Err(format!(
                        "bad duration {text:?}: unit must be one of s, m, h, d, w"
                    ));
                }
            };
            (&text[..i], unit)
        }
        _ => (text, 60),
    };
    let value: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {text:?}: expected e.g. 120, 2h or 7d"))?;
    let minutes = value.checked_mul(unit_seconds).map(|s| s / 60);
    match minutes.and_then(|m| u32::try_from(m).ok()) {
        Some(m) => Ok(m),
        None => Err(format!("duration {text:?} is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_suffix_and_rounds_seconds_down() {
        assert_eq!(parse_minutes("120"), Ok(120));
        assert_eq!(parse_minutes("2h"), Ok(120));
        assert_eq!(parse_minutes("7d"), Ok(10080));
        assert_eq!(parse_minutes("1w"), Ok(10080));
        assert_eq!(parse_minutes("90s"), Ok(1));
        assert_eq!(parse_minutes("30M"), Ok(30));
        assert!(parse_minutes("2y").is_err());
        assert!(parse_minutes("h").is_err());
        assert!(parse_minutes("99999999999w").is_err());
    }
}
