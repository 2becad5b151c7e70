//! The drop guard's event trigger function: reads the DROP statement's parse tree (not its text), and refuses with
//! 2BP01 a `DROP EXTENSION pg_recsys` or `DROP SCHEMA recsys`, however the statement was built or wherever it runs
//! (a DO block, EXECUTE, a function), while the extension's tables hold data and `recsys.allow_drop_with_data` is off.
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::ffi::CStr;

/// The extension's name and its fixed schema (`pg_recsys.control`: not relocatable).
const EXTENSION: &str = "pg_recsys";
const SCHEMA: &str = "recsys";

/// Which of the extension's tables holding users' data have rows.
const TABLES_WITH_ROWS: &str = "SELECT t.name FROM (VALUES
        ('movies', EXISTS (SELECT FROM recsys.movies)), ('models', EXISTS (SELECT FROM recsys.models)),
        ('persons', EXISTS (SELECT FROM recsys.persons)), ('ratings', EXISTS (SELECT FROM recsys.ratings)),
        ('users', EXISTS (SELECT FROM recsys.users))) AS t(name, has_rows)
    WHERE t.has_rows ORDER BY t.name";

/// Postgres' function-info record for `recsys_drop_guard` (version-1 calling convention).
#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_recsys_drop_guard() -> &'static pg_sys::Pg_finfo_record {
    const V1_API: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1_API
}

/// The `ddl_command_start` event trigger function of `sql/drop_guard.sql`.
///
/// # Safety
/// Called by Postgres' function manager with a valid `fcinfo`.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn recsys_drop_guard(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_EventTriggerData {
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED,
            "recsys_drop_guard must be called as an event trigger",
            "recsys_drop_guard",
        )
        .report(PgLogLevel::ERROR);
    }
    let data = context.cast::<pg_sys::EventTriggerData>();
    if let Some(kind) = dropped_target((*data).parsetree) {
        refuse_if_holding_data(kind);
    }
    pg_sys::Datum::from(0)
}

/// "DROP EXTENSION" or "DROP SCHEMA" when `parsetree` drops this extension or its schema, else None.
///
/// # Safety
/// `parsetree` is null or a valid parse node.
unsafe fn dropped_target(parsetree: *mut pg_sys::Node) -> Option<&'static str> {
    if parsetree.is_null() || (*parsetree).type_ != pg_sys::NodeTag::T_DropStmt {
        return None;
    }
    let stmt = parsetree.cast::<pg_sys::DropStmt>();
    let (kind, target) = match (*stmt).removeType {
        pg_sys::ObjectType::OBJECT_EXTENSION => ("DROP EXTENSION", EXTENSION),
        pg_sys::ObjectType::OBJECT_SCHEMA => ("DROP SCHEMA", SCHEMA),
        _ => return None,
    };
    names((*stmt).objects).iter().any(|name| name == target).then_some(kind)
}

/// The names of a DROP EXTENSION / DROP SCHEMA object list (String nodes).
///
/// # Safety
/// `list` is null or a valid List of nodes.
unsafe fn names(list: *mut pg_sys::List) -> Vec<String> {
    if list.is_null() {
        return Vec::new();
    }
    let cells = std::slice::from_raw_parts((*list).elements, (*list).length.max(0) as usize);
    cells
        .iter()
        .map(|cell| cell.ptr_value.cast::<pg_sys::Node>())
        .filter(|node| !node.is_null() && (**node).type_ == pg_sys::NodeTag::T_String)
        .map(|node| CStr::from_ptr((*node.cast::<pg_sys::String>()).sval).to_string_lossy().into_owned())
        .collect()
}

/// Raises 2BP01 naming the tables with rows, unless there are none or the session allows the drop.
fn refuse_if_holding_data(kind: &str) {
    if crate::guc::allow_drop_with_data() {
        return;
    }
    let holding = Spi::connect(|client| client.select(TABLES_WITH_ROWS, None, &[])?.map(|row| row.get::<String>(1)).collect::<Result<Vec<_>, _>>());
    let holding: Vec<String> = match holding {
        Ok(names) => names.into_iter().flatten().collect(),
        Err(error) => {
            ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("the drop guard could not read the extension's tables: {error}"),
                "recsys_drop_guard",
            )
            .report(PgLogLevel::ERROR);
            unreachable!("ERROR does not return")
        }
    };
    if holding.is_empty() {
        return;
    }
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
        format!("{kind} would delete the data pg_recsys holds"),
        "recsys_drop_guard",
    )
    .set_detail(format!("These tables of the extension have rows: {}.", holding.join(", ")))
    .set_hint(
        "Keep a copy first (pg_dump --schema=recsys); to drop the extension with its data, SET recsys.allow_drop_with_data = on in this session.",
    )
    .report(PgLogLevel::ERROR);
}
