//! A page's rows as callers see them, kept as the columns' values in select order and written
//! as JSON objects straight from there: a list of 50 rows builds no map per row.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value as Json};

use super::sql::{Column, Opener, value_out};
use oppidum_store::JsonValues;

/// The rows of a page.
#[derive(Debug, Default)]
pub struct Items {
    /// The field each value is of, in select order.
    names: Vec<String>,
    /// Each row's values; `None` for a sealed value the caller may not open (left out).
    rows: Vec<Vec<Option<Json>>>,
    /// Related rows included, per row (`_include`, an object); empty when none were asked for.
    included: Vec<Json>,
}

impl Items {
    /// The rows read with `columns`, as callers see them.
    pub(crate) fn read(columns: &[Column], rows: Vec<JsonValues>, open: Option<Opener<'_>>) -> Self {
        let rows = rows
            .into_iter()
            .map(|row| columns.iter().zip(row.0).map(|(column, value)| value_out(column, value, open)).collect())
            .collect();
        Self { names: columns.iter().map(|c| c.name.clone()).collect(), rows, included: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The value of `field` in row `index`, if the row has it.
    pub fn get(&self, index: usize, field: &str) -> Option<&Json> {
        let column = self.names.iter().position(|n| n == field)?;
        self.rows.get(index)?.get(column)?.as_ref()
    }

    /// Sets what `_include` holds for `field` in row `index`.
    pub(crate) fn include(&mut self, index: usize, field: &str, related: Json) {
        if self.included.len() < self.rows.len() {
            self.included.resize_with(self.rows.len(), || Json::Object(Map::new()));
        }
        if let Some(Json::Object(map)) = self.included.get_mut(index) {
            map.insert(field.to_owned(), related);
        }
    }

    /// Row `index`'s fields, then `_include` if related rows were asked for.
    fn entries(&self, index: usize) -> impl Iterator<Item = (&str, &Json)> {
        let fields = self.names.iter().zip(&self.rows[index]);
        let fields = fields.filter_map(|(name, value)| Some((name.as_str(), value.as_ref()?)));
        fields.chain(self.included.get(index).map(|included| ("_include", included)))
    }
}

impl Serialize for Items {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.rows.len()))?;
        for index in 0..self.rows.len() {
            seq.serialize_element(&Row { items: self, index })?;
        }
        seq.end()
    }
}

/// One row, written as an object.
struct Row<'a> {
    items: &'a Items,
    index: usize,
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.items.entries(self.index) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::sql::Out;

    fn column(name: &str, out: Out) -> Column {
        Column { name: name.into(), out }
    }

    #[test]
    fn rows_are_written_as_the_objects_callers_see() {
        let columns = [column("id", Out::Plain), column("done", Out::Bool), column("secret", Out::Sealed)];
        let rows = vec![
            JsonValues(vec![Json::from(1), Json::from(1), Json::from("sealed")]),
            JsonValues(vec![Json::from(2), Json::Null, Json::Null]),
        ];
        let mut items = Items::read(&columns, rows, None);
        assert_eq!(items.len(), 2);
        assert_eq!(items.get(0, "done"), Some(&Json::Bool(true)));
        assert_eq!(items.get(0, "secret"), None, "a sealed value nobody may open is left out");
        assert_eq!(items.get(1, "secret"), Some(&Json::Null));
        assert_eq!(
            serde_json::to_string(&items).expect("written"),
            r#"[{"id":1,"done":true},{"id":2,"done":null,"secret":null}]"#
        );
        items.include(1, "owner", serde_json::json!({"id": 7}));
        let written = serde_json::to_value(&items).expect("written");
        assert_eq!(written[0]["_include"], serde_json::json!({}));
        assert_eq!(written[1]["_include"], serde_json::json!({"owner": {"id": 7}}));
        assert_eq!(items.get(2, "id"), None);
    }
}
