; C++ definitions: the C ones plus classes, namespaces, templates and in-class method declarations.
(function_definition
  declarator: [(function_declarator declarator: (_) @name)
               (pointer_declarator declarator: (function_declarator declarator: (_) @name))
               (reference_declarator (function_declarator declarator: (_) @name))]
  ) @definition.function

(field_declaration declarator: (function_declarator declarator: (_) @name)) @definition.function

(template_declaration
  (function_definition declarator: (function_declarator declarator: (_) @name))) @definition.function

(class_specifier name: (_) @name body: (_)) @definition.class

(template_declaration (class_specifier name: (_) @name body: (_))) @definition.class

(struct_specifier name: (_) @name body: (_)) @definition.struct

(template_declaration (struct_specifier name: (_) @name body: (_))) @definition.struct

(union_specifier name: (_) @name body: (_)) @definition.union

(enum_specifier name: (_) @name body: (_)) @definition.enum

(namespace_definition name: (_) @name) @definition.namespace

(type_definition declarator: (type_identifier) @name) @definition.type

(alias_declaration name: (type_identifier) @name) @definition.type

(preproc_function_def name: (identifier) @name) @definition.macro
