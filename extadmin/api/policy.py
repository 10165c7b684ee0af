"""``/api/policy/``: the import policy in force (``EXTADMIN_IMPORT_POLICY``), as the console shows it.

Read by any signed-in user: an operator (or a pipeline) checks what the cluster accepts before it
uploads a package, instead of learning it from a refusal.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from extadmin.api.views import ERRORS, ApiView
from extadmin.importing import import_policy_from_settings


class ImportPolicySerializer(serializers.Serializer):
    """ThingWorx's ``ExtensionPackageImportPolicy`` keys; true allows, false refuses at validate."""

    importEnabled = serializers.BooleanField(help_text="false: every import is refused")
    allowJarResources = serializers.BooleanField(
        help_text='FileResource type="JAR" declared, or a .jar entry'
    )
    allowJavascriptResources = serializers.BooleanField(
        help_text='type="JS" declared, or a .js/.mjs entry (web apps\' scripts included)'
    )
    allowCSSResources = serializers.BooleanField(help_text='type="CSS" declared, or a .css entry')
    allowJSONResources = serializers.BooleanField(help_text='type="JSON" declared, or a .json entry')
    allowWebAppResources = serializers.BooleanField(
        help_text='type="WEBAPP"/"WAR" declared, a .war, a WEB-INF or webapps/ folder, a folder with an index.html'
    )
    allowEntities = serializers.BooleanField(
        help_text="any entity metadata.xml declares, or an entry under Entities/"
    )
    allowExtensibleEntities = serializers.BooleanField(
        help_text='an entity declared aspect.isExtensible="true"'
    )


class ImportPolicyView(ApiView):
    @extend_schema(responses={200: ImportPolicySerializer, **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(ImportPolicySerializer(import_policy_from_settings()).data)
