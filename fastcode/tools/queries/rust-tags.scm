; Rust definitions. Functions inside `impl` and `trait` blocks become methods.
(function_item name: (identifier) @name) @definition.function

(function_signature_item name: (identifier) @name) @definition.function

(struct_item name: (type_identifier) @name) @definition.struct

(enum_item name: (type_identifier) @name) @definition.enum

(union_item name: (type_identifier) @name) @definition.union

(trait_item name: (type_identifier) @name) @definition.trait

(impl_item type: (_) @name) @definition.impl

(mod_item name: (identifier) @name body: (_)) @definition.module

(type_item name: (type_identifier) @name) @definition.type

(macro_definition name: (identifier) @name) @definition.macro
