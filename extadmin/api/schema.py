"""``/api/schema/``: drf-spectacular's schema view, with the schema built once per process.

The schema is public (the same for every caller) and changes only with the code, yet building it
walks every view and serializer: about a third of a second a request. It is kept per API version
and language, so a client or a documentation page asking again costs next to nothing.
"""
from __future__ import annotations

from typing import Any, ClassVar

from django.utils import translation
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response


class SchemaView(SpectacularAPIView):
    _built: ClassVar[dict[tuple[Any, str | None], Any]] = {}

    def _get_schema_response(self, request: Request) -> Response:
        version = self.api_version or request.version or self._get_version_parameter(request)
        key = (version, translation.get_language())
        schema = self._built.get(key)
        if schema is None:
            generator = self.generator_class(urlconf=self.urlconf, api_version=version, patterns=self.patterns)
            schema = self._built[key] = generator.get_schema(request=request, public=self.serve_public)
        return Response(
            data=schema,
            headers={"Content-Disposition": f'inline; filename="{self._get_filename(request, version)}"'},
        )
