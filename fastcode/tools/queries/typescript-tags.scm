; TypeScript (and TSX) definitions: the JavaScript ones plus interfaces, type aliases, enums, namespaces, signatures.
(class_declaration name: (_) @name) @definition.class

(abstract_class_declaration name: (_) @name) @definition.class

(interface_declaration name: (_) @name) @definition.interface

(type_alias_declaration name: (_) @name) @definition.type

(enum_declaration name: (_) @name) @definition.enum

(internal_module name: (_) @name) @definition.namespace

(module name: (_) @name) @definition.module

(function_declaration name: (_) @name) @definition.function

(generator_function_declaration name: (_) @name) @definition.function

(function_signature name: (_) @name) @definition.function

(method_definition name: (_) @name) @definition.method

(method_signature name: (_) @name) @definition.method

(abstract_method_signature name: (_) @name) @definition.method

(public_field_definition
  name: (_) @name
  value: [(arrow_function) (function_expression)]) @definition.method

(program
  [(lexical_declaration
     (variable_declarator
       name: (identifier) @name
       value: [(arrow_function) (function_expression) (generator_function)]))
   (variable_declaration
     (variable_declarator
       name: (identifier) @name
       value: [(arrow_function) (function_expression) (generator_function)]))] @definition.function)

(export_statement
  declaration: (lexical_declaration
    (variable_declarator
      name: (identifier) @name
      value: [(arrow_function) (function_expression) (generator_function)]))) @definition.function

(export_statement declaration: (class_declaration name: (_) @name)) @definition.class

(export_statement declaration: (abstract_class_declaration name: (_) @name)) @definition.class

(export_statement declaration: (interface_declaration name: (_) @name)) @definition.interface

(export_statement declaration: (function_declaration name: (_) @name)) @definition.function
