//! Parquet inputs (local `*.parquet` and S3 objects) whose columns follow the `events` schema,
//! read with the parquet crate's Arrow reader (the one DataFusion uses) and turned into source
//! batches: columns cast to the `events` types, Hive partition values (`source=…/` in the path)
//! filling columns the files leave out, `_origin` and `_position` (the row's ordinal) set.
//!
//! A row without a required value (`id`, `source`, `detail_type`, `detail`) is rejected, named by
//! its position; its dead letter is the row as an envelope.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, StringViewBuilder, UInt64Array};
use arrow::datatypes::SchemaRef;

use super::{Decoded, Rejection};
use crate::event::{self, EnvelopeReader};

/// The `key=value` segments of a path (Hive partitions), values URL-decoded.
pub fn hive_values(path: &str) -> Vec<(String, String)> {
    path.split('/')
        .filter_map(|seg| seg.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| {
            let v = url::form_urlencoded::parse(format!("v={v}").as_bytes())
                .next()
                .map_or_else(|| v.to_owned(), |(_, v)| v.into_owned());
            (k.to_owned(), v)
        })
        .collect()
}

/// Checks a Parquet file's schema: every required column of `events` is in it or in its path.
pub fn check_schema(schema: &SchemaRef, hive: &[(String, String)]) -> Result<(), String> {
    let missing: Vec<&str> = [event::ID, event::SOURCE, event::DETAIL_TYPE, event::DETAIL]
        .into_iter()
        .filter(|c| schema.column_with_name(c).is_none() && !hive.iter().any(|(k, _)| k == c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    Err(format!(
        "a Parquet input must have the columns of `events` (id, source, detail_type, time, detail, …); this one lacks {} (it has {})",
        missing.join(", "),
        have.join(", ")
    ))
}

/// One batch of a Parquet input as a source batch. `first` is the position of its first row.
pub fn to_events(
    batch: &RecordBatch,
    origin: &Arc<str>,
    first: u64,
    hive: &[(String, String)],
) -> Result<Decoded, String> {
    let rows = batch.num_rows();
    let target = event::schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let name = field.name().as_str();
        let column: ArrayRef = match name {
            event::ORIGIN => Arc::new(StringArray::from(vec![origin.as_ref(); rows])),
            event::POSITION => Arc::new(UInt64Array::from_iter_values(first..first + rows as u64)),
            _ => match batch.column_by_name(name) {
                Some(c) => arrow::compute::cast(c, field.data_type()).map_err(|e| {
                    format!(
                        "the column `{name}` ({}) cannot be read as {}: {e}",
                        c.data_type(),
                        field.data_type()
                    )
                })?,
                None => match hive.iter().find(|(k, _)| k == name) {
                    Some((_, v)) => {
                        let text: ArrayRef = Arc::new(StringArray::from(vec![v.as_str(); rows]));
                        arrow::compute::cast(&text, field.data_type()).map_err(|e| {
                            format!(
                                "the partition value {name}={v} cannot be read as {}: {e}",
                                field.data_type()
                            )
                        })?
                    }
                    None if name == event::RESOURCES => {
                        let mut b = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
                        for _ in 0..rows {
                            b.append(true);
                        }
                        Arc::new(b.finish())
                    }
                    None if name == event::VERSION => Arc::new(StringArray::from(vec![Some("0"); rows])),
                    None => arrow::array::new_null_array(field.data_type(), rows),
                },
            },
        };
        columns.push(column);
    }
    // Rows without a required value are rejected, the rest kept.
    let required = |name: &str| columns[target.index_of(name).expect("an events column")].clone();
    let checks = [
        event::ID,
        event::SOURCE,
        event::DETAIL_TYPE,
        event::DETAIL,
        event::RESOURCES,
    ];
    let mut keep = vec![true; rows];
    let mut reasons: Vec<Option<String>> = vec![None; rows];
    for name in checks {
        let c = required(name);
        for (row, k) in keep.iter_mut().enumerate() {
            if c.is_null(row) && *k {
                *k = false;
                reasons[row] = Some(format!("the column `{name}` is null"));
            }
        }
    }
    let events_schema_batch = |cols: Vec<ArrayRef>| {
        // Nulls in non-null columns are removed below; until then, a nullable copy of the schema.
        let fields: Vec<arrow::datatypes::Field> = target
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols)
    };
    let all = events_schema_batch(columns).map_err(|e| e.to_string())?;
    let mut rejections = Vec::new();
    for (row, reason) in reasons.into_iter().enumerate() {
        if let Some(reason) = reason {
            rejections.push(Rejection {
                origin: origin.clone(),
                position: first + row as u64,
                line: first + row as u64,
                reason,
                raw: crate::action::row_json(&all, row).into_bytes(),
                skipped: false,
            });
        }
    }
    let kept = if rejections.is_empty() {
        all
    } else {
        arrow::compute::filter_record_batch(&all, &BooleanArray::from(keep)).map_err(|e| e.to_string())?
    };
    let kept = RecordBatch::try_new(target.clone(), kept.columns().to_vec()).map_err(|e| e.to_string())?;
    // The original record of a Parquet row is the row itself, as an envelope: so a dead letter
    // re-drives as NDJSON.
    let reader = EnvelopeReader::new(&kept).ok_or("the columns do not make envelopes")?;
    let mut raw = StringViewBuilder::with_capacity(kept.num_rows());
    for row in 0..kept.num_rows() {
        raw.append_value(reader.envelope_json(row));
    }
    let mut columns = kept.columns().to_vec();
    columns.push(Arc::new(raw.finish()));
    let batch = RecordBatch::try_new(event::source_schema(), columns).map_err(|e| e.to_string())?;
    Ok(Decoded {
        batch,
        rejections,
        marks: Vec::new(),
        prefiltered: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_partitions_come_from_the_path() {
        assert_eq!(
            hive_values("s3://b/events/source=com.shop.orders/date=2026-01-01/part-1.parquet"),
            [
                ("source".to_owned(), "com.shop.orders".to_owned()),
                ("date".to_owned(), "2026-01-01".to_owned())
            ]
        );
        assert_eq!(hive_values("out/source=a%20b/x.parquet")[0].1, "a b");
    }
}
