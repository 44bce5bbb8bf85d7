//! Which ORM wrote a query, from the style of its SQL, so advice can name the eager-loading call.

/// An ORM (or none) recognised by its SQL style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrmStyle {
    /// SQLAlchemy: `users.id AS users_id`.
    SqlAlchemy,
    /// Django: `"app_model"."column"` lists and `LIMIT 21`.
    Django,
    /// Rails (ActiveRecord): `SELECT "posts".* FROM "posts"`.
    Rails,
    /// Prisma: `"public"."Model"` schema-qualified quoted names.
    Prisma,
    /// Hibernate: generated aliases such as `u1_0.id` or `product0_.id`.
    Hibernate,
    /// Sequelize: tables aliased by their model, `FROM "orders" AS "Order"`.
    Sequelize,
    /// Hand-written or unrecognised.
    #[default]
    Unknown,
}

impl OrmStyle {
    /// Recognises the style of a raw statement text.
    pub fn detect(sql: &[u8]) -> Self {
        let head = &sql[..sql.len().min(2048)];
        // Every style below needs a quote, a qualified name or a comment: hand-written and
        // load-test SQL (pgbench) has none, and is told apart without allocating.
        if !head.iter().any(|b| matches!(b, b'"' | b'.' | b'/')) {
            return Self::Unknown;
        }
        let text = String::from_utf8_lossy(head);
        let lower = text.to_ascii_lowercase();
        if lower.contains("\"public\".\"") {
            Self::Prisma
        } else if has_hibernate_alias(&lower) {
            Self::Hibernate
        } else if has_sqlalchemy_alias(&lower) {
            Self::SqlAlchemy
        } else if lower.contains("\".* from \"") || lower.contains("/*application:") {
            Self::Rails
        } else if has_model_alias(&text) {
            Self::Sequelize
        } else if lower.contains("\".\"") {
            Self::Django
        } else {
            Self::Unknown
        }
    }

    /// The eager-loading call that replaces per-row queries in this ORM, if known.
    pub fn eager_loading(self) -> Option<&'static str> {
        match self {
            Self::SqlAlchemy => Some(
                "SQLAlchemy: load the relationship eagerly, e.g. select(Parent).options(selectinload(Parent.children)) \
                 (one extra query with IN) or joinedload(Parent.children) (one JOIN); or set lazy=\"selectin\" on the relationship.",
            ),
            Self::Django => Some(
                "Django: Parent.objects.prefetch_related(\"children\") for reverse and many-to-many relations, or \
                 Child.objects.select_related(\"parent\") for a foreign key.",
            ),
            Self::Rails => Some("Rails: Parent.includes(:children) (or preload / eager_load)."),
            Self::Prisma => Some("Prisma: prisma.parent.findMany({ include: { children: true } })."),
            Self::Hibernate => Some(
                "Hibernate/JPA: select p from Parent p join fetch p.children (JOIN FETCH), an @EntityGraph, or \
                 @BatchSize on the association.",
            ),
            Self::Sequelize => Some(
                "Sequelize: Parent.findAll({ include: [{ model: Child }] }) loads the children with the parents \
                 (add separate: true on a hasMany include for one extra query with IN).",
            ),
            Self::Unknown => None,
        }
    }
}

/// `"table" AS "Model"`: a quoted table aliased by a capitalised quoted model name.
fn has_model_alias(text: &str) -> bool {
    text.match_indices("\" AS \"").any(|(at, m)| text[at + m.len()..].starts_with(|c: char| c.is_ascii_uppercase()))
}

/// `table.column AS table_column`, SQLAlchemy's label style.
fn has_sqlalchemy_alias(lower: &str) -> bool {
    lower.split(" as ").skip(1).any(|after| {
        let label: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        label.contains('_') && lower.contains(&format!("{}.", label.split('_').next().unwrap_or_default()))
    })
}

/// `u1_0.` (Hibernate 6) or `product0_.` (Hibernate 5) column qualifiers.
fn has_hibernate_alias(lower: &str) -> bool {
    lower.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).any(|w| {
        let Some((alias, _)) = w.split_once('.') else { return false };
        let trimmed = alias.trim_end_matches(|c: char| c.is_ascii_digit() || c == '_');
        !trimmed.is_empty()
            && alias.len() > trimmed.len()
            && (alias.ends_with('_')
                || alias.rsplit_once('_').is_some_and(|(a, b)| {
                    a.ends_with(|c: char| c.is_ascii_digit()) && b.chars().all(|c| c.is_ascii_digit())
                }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles() {
        let cases = [
            ("SELECT addresses.id AS addresses_id, addresses.email AS addresses_email FROM addresses WHERE addresses.user_id = %(param_1)s", OrmStyle::SqlAlchemy),
            ("SELECT \"blog_post\".\"id\", \"blog_post\".\"title\" FROM \"blog_post\" WHERE \"blog_post\".\"author_id\" = 1", OrmStyle::Django),
            ("SELECT \"posts\".* FROM \"posts\" WHERE \"posts\".\"user_id\" = $1", OrmStyle::Rails),
            ("SELECT \"public\".\"Post\".\"id\" FROM \"public\".\"Post\" WHERE \"public\".\"Post\".\"authorId\" = $1", OrmStyle::Prisma),
            ("select o1_0.id,o1_0.total from orders o1_0 where o1_0.customer_id=$1", OrmStyle::Hibernate),
            ("select product0_.id as id1_4_ from products product0_ where product0_.sku=$1", OrmStyle::Hibernate),
            ("SELECT \"id\", \"total\", \"user_id\" FROM \"orders\" AS \"Order\" WHERE \"Order\".\"user_id\" = $1;", OrmStyle::Sequelize),
            ("select * from orders where user_id = $1", OrmStyle::Unknown),
        ];
        for (sql, style) in cases {
            assert_eq!(OrmStyle::detect(sql.as_bytes()), style, "{sql}");
        }
    }
}
