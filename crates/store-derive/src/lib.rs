//! `#[derive(FromRow)]`: a struct with named fields decodes from a row by column name (looked for
//! at the field's position first), each field through `oppidum_store::Decode` (the column named
//! like the field; `Option` fields accept `NULL`).

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, parse_macro_input};

#[proc_macro_derive(FromRow)]
pub fn derive_from_row(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            _ => return error(name, "derive(FromRow) needs a struct with named fields"),
        },
        _ => return error(name, "derive(FromRow) needs a struct with named fields"),
    };
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    // Queries usually select the columns in the fields' order: each field looks at its own
    // position first (one name comparison) and searches by name only when it is elsewhere.
    let decoded = fields.iter().filter_map(|field| field.ident.as_ref()).enumerate().map(|(index, ident)| {
        let column = ident.to_string();
        let column = column.strip_prefix("r#").unwrap_or(&column).to_owned();
        quote! { #ident: row.get_near(#column, #index)? }
    });
    let count = fields.len();
    quote! {
        impl #impl_generics ::oppidum_store::FromRow for #name #type_generics #where_clause {
            const COLUMNS: usize = #count;

            fn from_row(row: &::oppidum_store::Row<'_>) -> ::std::result::Result<Self, ::oppidum_store::DecodeError> {
                ::std::result::Result::Ok(Self { #(#decoded),* })
            }
        }
    }
    .into()
}

fn error(name: &syn::Ident, message: &str) -> TokenStream {
    syn::Error::new(name.span(), message).to_compile_error().into()
}
