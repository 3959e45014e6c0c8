; Python definitions. Decorated forms come first so the decorators are part of the range.
(decorated_definition
  definition: (class_definition name: (identifier) @name)) @definition.class

(decorated_definition
  definition: (function_definition name: (identifier) @name)) @definition.function

(class_definition name: (identifier) @name) @definition.class

(function_definition name: (identifier) @name) @definition.function
