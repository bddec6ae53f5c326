"""The HTTP API: one Powertools resolver (``router.app``) behind API Gateway and ``querio serve``.

- ``router``        routes: thin glue from HTTP to :class:`~querio.service.QuerioService`
- ``errors``        the one place an exception becomes an HTTP status and the JSON error shape
- ``identity``      the caller's :class:`~querio.models.Principal`, from JWT authorizer claims only
- ``local_server``  a stdlib HTTP server that turns requests into API Gateway v2 events

Nothing here is imported by the domain; importing this package builds no clients.
"""
