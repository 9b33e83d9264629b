"""The operations API's request handlers, one module per resource; `operations.api`
declares the routes and hands each request to one of them."""
