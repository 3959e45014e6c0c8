; C definitions: functions with a body, named structs/unions/enums with a body, typedefs, function-like macros.
(function_definition
  declarator: [(function_declarator declarator: (_) @name)
               (pointer_declarator declarator: (function_declarator declarator: (_) @name))
               (pointer_declarator
                 declarator: (pointer_declarator declarator: (function_declarator declarator: (_) @name)))]
  ) @definition.function

(struct_specifier name: (type_identifier) @name body: (_)) @definition.struct

(union_specifier name: (type_identifier) @name body: (_)) @definition.union

(enum_specifier name: (type_identifier) @name body: (_)) @definition.enum

(type_definition declarator: (type_identifier) @name) @definition.type

(preproc_function_def name: (identifier) @name) @definition.macro
