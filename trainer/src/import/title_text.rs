//! MovieLens title conventions: "American President, The (1995)" is the title "The American President" and the
//! year 1995; alternative titles in parentheses stay. Also the normalised form used to match titles across sources.

/// Leading articles that MovieLens moves to the end of a title ("Matrix, The").
const ARTICLES: &[&str] = &[
    "The", "A", "An", "Les", "La", "Le", "L'", "Il", "Lo", "I", "Gli", "Das", "Der", "Die", "Den", "Det", "El", "Los", "Las", "Un", "Une", "O", "Os",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedTitle {
    pub title: String,
    pub year: Option<i32>,
}

/// Splits a MovieLens title into readable title and year.
pub fn parse_movielens_title(raw: &str) -> ParsedTitle {
    let trimmed = raw.trim();
    let (rest, year) = split_trailing_year(trimmed);
    let rest = rest.trim_end();
    let (main, alternative) = match rest.find(" (") {
        Some(position) if position > 0 => (&rest[..position], &rest[position..]),
        _ => (rest, ""),
    };
    let title = format!("{}{alternative}", move_article_to_front(main.trim()));
    let title = if title.trim().is_empty() { trimmed.to_string() } else { title };
    ParsedTitle { title, year }
}

/// "(1995)" or "(1995-1996)" at the end, returning the text before it and the (first) year.
fn split_trailing_year(text: &str) -> (&str, Option<i32>) {
    let Some(without_paren) = text.strip_suffix(')') else { return (text, None) };
    let Some(open) = without_paren.rfind('(') else { return (text, None) };
    let inside = without_paren[open + 1..].trim();
    let first = inside.split(['-', '–']).next().unwrap_or("").trim();
    match first.parse::<i32>() {
        Ok(year) if first.len() == 4 && (1870..=2100).contains(&year) => (&text[..open], Some(year)),
        _ => (text, None),
    }
}

fn move_article_to_front(main: &str) -> String {
    if let Some(comma) = main.rfind(", ") {
        let candidate = &main[comma + 2..];
        if let Some(article) = ARTICLES.iter().find(|article| **article == candidate) {
            let separator = if article.ends_with('\'') { "" } else { " " };
            return format!("{article}{separator}{}", &main[..comma]);
        }
    }
    main.to_string()
}

/// Lower-case letters and digits only, leading article dropped, single spaces: "The Matrix!" → "matrix".
pub fn normalise_for_matching(title: &str) -> String {
    let lowered: String = title.chars().flat_map(char::to_lowercase).map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    let words: Vec<&str> = lowered.split_whitespace().collect();
    let start = usize::from(words.len() > 1 && matches!(words[0], "the" | "a" | "an"));
    words[start..].join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> (String, Option<i32>) {
        let p = parse_movielens_title(raw);
        (p.title, p.year)
    }

    #[test]
    fn moves_trailing_articles_and_extracts_the_year() {
        assert_eq!(parsed("American President, The (1995)"), ("The American President".into(), Some(1995)));
        assert_eq!(parsed("Toy Story (1995)"), ("Toy Story".into(), Some(1995)));
        assert_eq!(parsed("Armée des ombres, L' (1969)"), ("L'Armée des ombres".into(), Some(1969)));
        assert_eq!(
            parsed("City of Lost Children, The (Cité des enfants perdus, La) (1995)"),
            ("The City of Lost Children (Cité des enfants perdus, La)".into(), Some(1995))
        );
    }

    #[test]
    fn keeps_titles_without_a_year_or_article() {
        assert_eq!(parsed("Babylon 5"), ("Babylon 5".into(), None));
        assert_eq!(parsed("Seven (a.k.a. Se7en) (1995)"), ("Seven (a.k.a. Se7en)".into(), Some(1995)));
        assert_eq!(parsed("1900 (Novecento) (1976)"), ("1900 (Novecento)".into(), Some(1976)));
        assert_eq!(parsed("Fawlty Towers (1975-1979)"), ("Fawlty Towers".into(), Some(1975)));
        assert_eq!(parsed("Eye, The"), ("The Eye".into(), None));
    }

    #[test]
    fn normalised_titles_ignore_case_punctuation_and_leading_article() {
        assert_eq!(normalise_for_matching("The Matrix!"), "matrix");
        assert_eq!(normalise_for_matching("Se7en:  the  Movie"), "se7en the movie");
        assert_eq!(normalise_for_matching("A"), "a");
    }
}
