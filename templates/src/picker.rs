//! The product picker of the review screens (shelf crops, merchant lines):
//! products found by name or barcode, each a button that submits the form
//! it is in with that product.

use maud::{Markup, html};

/// Products found by the picker: (id, barcode, name).
pub fn render_picked(products: &[(String, String, String)]) -> Markup {
    html! {
        @if products.is_empty() {
            p.muted { "No product matches." }
        } @else {
            ul.picked {
                @for (id, barcode, name) in products {
                    li { button.link type="submit" name="product" value=(id) { (barcode) " " (name) } }
                }
            }
        }
    }
}
