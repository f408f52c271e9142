//! The stream parameters, `count`, `interval_ms` and `start`: the same for every transport,
//! declared once.
//!
//! poem-openapi writes one spec parameter per handler argument and has no extractor for a
//! struct of query parameters. So [`StreamQuery`] reads all three from the query string (a
//! poem extractor, which the spec does not see), and [`StreamOperations`] declares them in the
//! spec on every operation of the APIs it wraps. A test checks that every stream operation
//! declares them, with the ranges [`StreamParams::new`] enforces.

use std::collections::HashMap;

use poem::{FromRequest, IntoResponse, Request, RequestBody, endpoint::BoxEndpoint, http::Method};
use poem_openapi::{
    OpenApi,
    registry::{MetaApi, MetaOperationParam, MetaParamIn, MetaSchema, MetaSchemaRef, Registry},
};

use super::errors::StreamError;
use crate::generator::{DEFAULT_COUNT, MAX_COUNT, MAX_INTERVAL_MS, StreamParams};

/// One parameter as the spec declares it.
struct Declared {
    name: &'static str,
    description: &'static str,
    default: u64,
    maximum: u64,
}

/// The parameters, in the order the spec lists them.
const DECLARED: [Declared; 3] = [
    Declared {
        name: "count",
        description: "Length of the stream: chunks `start .. count` are sent.",
        default: DEFAULT_COUNT,
        maximum: MAX_COUNT,
    },
    Declared {
        name: "interval_ms",
        description: "Pause between two chunks, in milliseconds (0: as fast as the client reads).",
        default: 0,
        maximum: MAX_INTERVAL_MS,
    },
    Declared {
        name: "start",
        description: "Index of the first chunk, at most `count` (a resume point). On \
                      `/stream/sse` a `Last-Event-ID` header, when present, wins.",
        default: 0,
        maximum: MAX_COUNT,
    },
];

/// A stream operation's parameters, validated: the one way an operation reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamQuery(pub StreamParams);

impl StreamQuery {
    /// The parameters in a query string (`count=10&interval_ms=300`), or the 400 that names
    /// the one at fault. Each name's first occurrence counts; other names are ignored.
    pub fn parse(query: &str) -> Result<Self, StreamError> {
        let mut values = DECLARED.map(|declared| declared.default);
        let mut seen = [false; DECLARED.len()];
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let Some(i) = DECLARED.iter().position(|declared| declared.name == name) else {
                continue;
            };
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let declared = &DECLARED[i];
            values[i] = value.parse().map_err(|_| {
                StreamError::bad_request(format!(
                    "parameter `{}` must be a whole number from 0 to {}, got `{value}`",
                    declared.name, declared.maximum
                ))
            })?;
        }
        let [count, interval_ms, start] = values;
        Ok(Self(StreamParams::new(count, interval_ms, start)?))
    }
}

impl<'a> FromRequest<'a> for StreamQuery {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Self::parse(req.uri().query().unwrap_or_default())
            .map_err(|refused| poem::Error::from_response(refused.into_response()))
    }
}

/// The APIs `A`, every operation of which takes the stream parameters: their meta declares
/// them first (see the module's text).
#[derive(Default)]
pub struct StreamOperations<A>(pub A);

impl<A: OpenApi> OpenApi for StreamOperations<A> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = A::meta();
        let operations = apis
            .iter_mut()
            .flat_map(|api| &mut api.paths)
            .flat_map(|path| &mut path.operations);
        for operation in operations {
            operation.params.splice(0..0, declarations());
        }
        apis
    }

    fn register(registry: &mut Registry) {
        A::register(registry);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        self.0.add_routes(route_table);
    }
}

/// The spec's declarations of the stream parameters.
fn declarations() -> impl Iterator<Item = MetaOperationParam> {
    DECLARED.iter().map(|declared| MetaOperationParam {
        name: declared.name.to_owned(),
        schema: MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: Some("uint64"),
            default: Some(declared.default.into()),
            maximum: Some(declared.maximum as f64),
            minimum: Some(0.0),
            ..MetaSchema::new("integer")
        })),
        in_type: MetaParamIn::Query,
        description: Some(declared.description.to_owned()),
        required: false,
        deprecated: false,
        explode: true,
        style: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Result<(u64, u64, u64), String> {
        match StreamQuery::parse(query) {
            Ok(StreamQuery(p)) => Ok((p.count(), p.interval_ms(), p.start())),
            Err(StreamError::BadRequest(body)) => Err(body.0.error),
            Err(other) => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn absent_parameters_take_their_defaults_and_others_are_ignored() {
        assert_eq!(params(""), Ok((10, 0, 0)));
        assert_eq!(params("other=x&count=5"), Ok((5, 0, 0)));
        assert_eq!(params("interval_ms=300&start=2"), Ok((10, 300, 2)));
        assert_eq!(
            params("count=7&count=9"),
            Ok((7, 0, 0)),
            "the first occurrence counts"
        );
        assert_eq!(
            params("co%75nt=%32&start=1"),
            Ok((2, 0, 1)),
            "names and values decoded"
        );
    }

    #[test]
    fn each_bad_value_is_a_400_naming_its_parameter() {
        let cases = [
            ("count=-1", "`count`"),
            ("count=ten", "`count`"),
            ("count=", "`count`"),
            ("count=1.5", "`count`"),
            ("count=100000001", "`count`"),
            ("count=99999999999999999999999", "`count`"),
            ("interval_ms=-5", "`interval_ms`"),
            ("interval_ms=60001", "`interval_ms`"),
            ("start=-1", "`start`"),
            ("count=3&start=4", "`start`"),
            ("start=11", "`start`"),
        ];
        for (query, needle) in cases {
            let error = params(query).expect_err(query);
            assert!(error.contains(needle), "{query}: {error}");
        }
    }

    #[test]
    fn the_declarations_match_what_is_enforced() {
        for declared in &DECLARED {
            let at_max = format!("{}={}&count={MAX_COUNT}", declared.name, declared.maximum);
            assert!(StreamQuery::parse(&at_max).is_ok(), "{at_max}");
            let past = format!(
                "{}={}&count={MAX_COUNT}",
                declared.name,
                declared.maximum + 1
            );
            assert!(StreamQuery::parse(&past).is_err(), "{past}");
        }
    }
}
