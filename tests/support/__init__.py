"""What the tests share, imported from here (never from a conftest): the default scenario's names and ids
(`scenario`), ARM ids in the session sandbox (`arm`), sandbox connections and blocks built the way the product
builds them (`sandbox`), and driving runbooks and tasks the way an admin does (`runs`)."""
