"""What the tests share, imported from here (never from a conftest or another test module): the default
scenario's names and ids (`scenario`), ARM ids in the session sandbox (`arm`), sandbox connections and blocks
built the way the product builds them (`sandbox`), the sandbox world changed as an admin would (`world`), the
raw SDK clients the sandbox's contract tests use (`sdk_clients`), driving runbooks and tasks the way an admin
does (`runs`, `lock`), and a browser on the served UI (`browser`)."""
