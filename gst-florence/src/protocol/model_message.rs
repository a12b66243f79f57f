//! The `florence-model` element message: which loaded model an instance uses
//! and how many users share it (`FLORENCE_MODEL_*` in florence.h). Posted when
//! an instance (or a florenced worker's pipeline) gets its model.

/// The message's structure name.
pub const MODEL_MESSAGE_NAME: &str = "florence-model";

/// A field of the `florence-model` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelField {
    /// string: the `model-dir` property.
    Dir,
    /// guint64: the loaded model, unique in the process.
    Id,
    /// guint: instances and workers using it now.
    Users,
    /// boolean: this instance loaded it (else it joined the users of a loaded one).
    Loaded,
}

impl ModelField {
    pub const ALL: [ModelField; 4] = [
        ModelField::Dir,
        ModelField::Id,
        ModelField::Users,
        ModelField::Loaded,
    ];

    /// The field's name on the message.
    pub fn name(self) -> &'static str {
        match self {
            ModelField::Dir => "model-dir",
            ModelField::Id => "model-id",
            ModelField::Users => "users",
            ModelField::Loaded => "loaded",
        }
    }
}

/// The message's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInUse {
    pub model_dir: String,
    pub model_id: u64,
    pub users: u32,
    pub loaded: bool,
}

impl ModelInUse {
    pub fn encode(&self) -> gst::Structure {
        gst::Structure::builder(MODEL_MESSAGE_NAME)
            .field(ModelField::Dir.name(), &self.model_dir)
            .field(ModelField::Id.name(), self.model_id)
            .field(ModelField::Users.name(), self.users)
            .field(ModelField::Loaded.name(), self.loaded)
            .build()
    }

    /// The contents of a `florence-model` message; `None` for any other
    /// structure (or one missing a field: the element always writes all).
    pub fn decode(s: &gst::StructureRef) -> Option<ModelInUse> {
        if s.name() != MODEL_MESSAGE_NAME {
            return None;
        }
        Some(ModelInUse {
            model_dir: s.get(ModelField::Dir.name()).ok()?,
            model_id: s.get(ModelField::Id.name()).ok()?,
            users: s.get(ModelField::Users.name()).ok()?,
            loaded: s.get(ModelField::Loaded.name()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_reads_back() {
        gst::init().unwrap();
        let m = ModelInUse {
            model_dir: "/models/florence".into(),
            model_id: 7,
            users: 2,
            loaded: false,
        };
        assert_eq!(ModelInUse::decode(&m.encode()), Some(m));
        assert_eq!(
            ModelInUse::decode(&gst::Structure::new_empty("florence-caption")),
            None
        );
    }
}
