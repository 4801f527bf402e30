//! The rate-limit variables' text: limits as the prototype wrote them (Flask-Limiter's
//! `100 per day`) or shorter (`100/day`, `5/10s`), per route, and the infer quotas.

use common::ratelimit::Limit;
use std::time::Duration;

/// `"200/day, 50/hour"`, also `"100 per day"` as the prototype wrote them, and `"5/10s"`.
pub fn parse_limits(text: &str) -> Result<Vec<Limit>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_limit)
        .collect()
}

fn parse_limit(text: &str) -> Result<Limit, String> {
    let (count, per) = text
        .split_once('/')
        .or_else(|| text.split_once(" per "))
        .ok_or_else(|| format!("`{text}` is not like `100/day` or `100 per day`"))?;
    let quota: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{count}` in `{text}` is not a positive count"))?;
    let per = per.trim();
    let seconds = match per.trim_end_matches('s') {
        "second" | "sec" => 1,
        "minute" | "min" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        _ => per
            .strip_suffix('s')
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                format!("`{per}` in `{text}` is not second, minute, hour, day or a number of seconds like `30s`")
            })?,
    };
    Ok(Limit::new(quota, Duration::from_secs(seconds)))
}

/// `"/api/v1/predict=100/day; /api/v2/predict=150/day, 10/minute"`.
pub fn parse_route_limits(text: &str) -> Result<Vec<(String, Vec<Limit>)>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (path, limits) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not like `/path=100/day`"))?;
            let path = path.trim();
            if !path.starts_with('/') {
                return Err(format!("`{path}` is not a path"));
            }
            Ok((path.to_owned(), parse_limits(limits)?))
        })
        .collect()
}

/// `"mnist-mlp=/api/v1/predict; mnist-cnn=/api/v2/predict"`.
pub fn parse_oip_quotas(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (model, route) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not like `mnist-cnn=/api/v2/predict`"))?;
            let (model, route) = (model.trim(), route.trim());
            if model.is_empty() || model.contains('/') {
                return Err(format!("`{model}` is not a model name"));
            }
            if !route.starts_with('/') {
                return Err(format!("`{route}` is not a path"));
            }
            Ok((model.to_owned(), route.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn limits_parse_in_the_prototypes_words_and_ours() {
        assert_eq!(
            parse_limits("200 per day, 50/hour, 5/10s, 1/second").unwrap(),
            vec![
                Limit::new(200, Duration::from_secs(86_400)),
                Limit::new(50, Duration::from_secs(3_600)),
                Limit::new(5, Duration::from_secs(10)),
                Limit::new(1, Duration::from_secs(1)),
            ]
        );
        assert_eq!(
            parse_limits("10 per minutes").unwrap(),
            vec![Limit::new(10, Duration::from_secs(60))]
        );
        for bad in ["0/day", "ten/day", "5/fortnight", "5", "5/0s"] {
            assert!(parse_limits(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_oip_quotas("mnist-mlp=/api/v1/predict; mnist-cnn = /api/v2/predict").unwrap()[1],
            ("mnist-cnn".to_owned(), "/api/v2/predict".to_owned())
        );
        assert!(parse_oip_quotas("mnist=api").is_err());
        let routes =
            parse_route_limits("/api/v1/predict=100/day; /api/v2/predict=150/day, 10/minute")
                .unwrap();
        assert_eq!(routes[0].0, "/api/v1/predict");
        assert_eq!(
            routes[1].1,
            vec![
                Limit::new(150, Duration::from_secs(86_400)),
                Limit::new(10, Duration::from_secs(60))
            ]
        );
        assert!(parse_route_limits("api=5/day").is_err());
    }
}
