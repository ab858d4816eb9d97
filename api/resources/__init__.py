"""HTTP resources (flask-smorest blueprints). They parse, call a service, and shape output."""
