//! Message type bytes, as enums (protocol document, "Message Formats").

macro_rules! tag_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $byte:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A type byte this protocol version does not define; forwarded untouched.
            Unknown(u8),
        }

        impl $name {
            /// The enum value for a type byte.
            pub fn from_byte(b: u8) -> Self {
                match b {
                    $($byte => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }

            /// The type byte on the wire.
            pub fn byte(self) -> u8 {
                match self {
                    $(Self::$variant => $byte,)*
                    Self::Unknown(b) => b,
                }
            }
        }
    };
}

tag_enum! {
    /// Type byte of a message sent by the client after the startup phase.
    FrontendTag {
        /// Bind a prepared statement to parameters, creating a portal.
        Bind = b'B',
        /// Close a prepared statement or portal.
        Close = b'C',
        /// COPY data from the client.
        CopyData = b'd',
        /// COPY from the client finished.
        CopyDone = b'c',
        /// COPY from the client failed.
        CopyFail = b'f',
        /// Describe a statement or portal.
        Describe = b'D',
        /// Execute a portal.
        Execute = b'E',
        /// Ask the server to flush its output.
        Flush = b'H',
        /// Fast-path function call.
        FunctionCall = b'F',
        /// Parse a statement.
        Parse = b'P',
        /// Password, SASL or GSS response during authentication.
        AuthResponse = b'p',
        /// Simple query.
        Query = b'Q',
        /// End of an extended-protocol batch.
        Sync = b'S',
        /// Close the session.
        Terminate = b'X',
    }
}

tag_enum! {
    /// Type byte of a message sent by the server.
    BackendTag {
        /// Authentication request or result.
        Authentication = b'R',
        /// Cancellation key and backend process id.
        BackendKeyData = b'K',
        /// Bind completed.
        BindComplete = b'2',
        /// Close completed.
        CloseComplete = b'3',
        /// A statement completed.
        CommandComplete = b'C',
        /// COPY data from the server.
        CopyData = b'd',
        /// COPY from the server finished.
        CopyDone = b'c',
        /// COPY into the server started.
        CopyInResponse = b'G',
        /// COPY out of the server started.
        CopyOutResponse = b'H',
        /// COPY in both directions started (replication).
        CopyBothResponse = b'W',
        /// One result row.
        DataRow = b'D',
        /// The query string was empty.
        EmptyQueryResponse = b'I',
        /// An error.
        ErrorResponse = b'E',
        /// Fast-path function result.
        FunctionCallResponse = b'V',
        /// The server does not support the requested minor version or options.
        NegotiateProtocolVersion = b'v',
        /// Describe found no rows to describe.
        NoData = b'n',
        /// A notice.
        NoticeResponse = b'N',
        /// LISTEN/NOTIFY notification.
        NotificationResponse = b'A',
        /// Parameter types of a described statement.
        ParameterDescription = b't',
        /// A run-time parameter changed.
        ParameterStatus = b'S',
        /// Parse completed.
        ParseComplete = b'1',
        /// Execute hit its row limit.
        PortalSuspended = b's',
        /// The server is ready for a new query; carries the transaction status.
        ReadyForQuery = b'Z',
        /// Column descriptions of the rows to come.
        RowDescription = b'T',
    }
}
