; JavaScript definitions: classes, functions, methods, and top-level or exported `const f = () => ...`.
(class_declaration name: (_) @name) @definition.class

(function_declaration name: (_) @name) @definition.function

(generator_function_declaration name: (_) @name) @definition.function

(method_definition name: (_) @name) @definition.method

(field_definition
  property: (_) @name
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

(export_statement declaration: (function_declaration name: (_) @name)) @definition.function
