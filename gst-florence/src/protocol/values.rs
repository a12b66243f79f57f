//! Reading numbers out of GLib values leniently: a count may come as any
//! GLib integer type (what PyGObject, `gst_structure_from_string` or C code
//! produce) or as a double of integral value.

use gst::glib;

/// `v` as a number: any integer type, float or double.
pub fn number(v: &glib::SendValue) -> Option<f64> {
    integer(v)
        .map(|i| i as f64)
        .or_else(|| v.get::<f64>().ok())
        .or_else(|| v.get::<f32>().ok().map(f64::from))
}

/// `v` as an integer: any integer type, or a double of integral value.
pub fn integer(v: &glib::SendValue) -> Option<i128> {
    use glib::Type;
    let t = v.type_();
    let int = match t {
        t if t == Type::I8 => v.get::<i8>().ok().map(i128::from),
        t if t == Type::U8 => v.get::<u8>().ok().map(i128::from),
        t if t == Type::I32 => v.get::<i32>().ok().map(i128::from),
        t if t == Type::U32 => v.get::<u32>().ok().map(i128::from),
        t if t == Type::I_LONG => v.get::<glib::ILong>().ok().map(|l| i128::from(l.0)),
        t if t == Type::U_LONG => v.get::<glib::ULong>().ok().map(|l| i128::from(l.0)),
        t if t == Type::I64 => v.get::<i64>().ok().map(i128::from),
        t if t == Type::U64 => v.get::<u64>().ok().map(i128::from),
        _ => None,
    };
    int.or_else(|| {
        let d = v
            .get::<f64>()
            .ok()
            .or_else(|| v.get::<f32>().ok().map(f64::from))?;
        (d.fract() == 0.0 && d.abs() < 9.0e18).then_some(d as i128)
    })
}
