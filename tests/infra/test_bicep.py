"""What can be checked of the Azure deployment without Azure: infra/*.bicep, azure.yaml.

- every setting the app reads (operations/settings.py) is set by Bicep or has a default,
  and every app setting Bicep sets is one the app or the platform reads;
- host storage (AzureWebJobsStorage__*) is identity-based, and that identity holds the
  data roles each storage service needs (blob, queue, table);
- the resources are secure by default and wired the way azd and Flex Consumption expect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from operations.settings import SETTINGS
from tests.infra.app_settings import FUNCTION_APP, app_settings_for_backend
from tests.infra.bicep_templates import (
    BicepTemplate,
    InfraTemplates,
    Resource,
    accessor_path,
    load_infra,
    mentions,
)
from tests.infra.package_build import DeployablePackage, run_probe

STORAGE = "modules/storage.bicep"
STORAGE_ACCESS = "modules/storage-access.bicep"
IDENTITY = "modules/identity.bicep"
MONITORING = "modules/monitoring.bicep"

# Built-in role definition ids (they are the same in every tenant).
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
# The built-in roles holding Microsoft.Storage/storageAccounts/blobServices/
# generateUserDelegationKey/action, which signing a user delegation SAS needs (the result
# links of GET .../result): Blob Data Owner, Contributor, Reader, and Blob Delegator.
USER_DELEGATION_KEY_ROLES = {
    BLOB_DATA_OWNER,
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "db58b8e5-c6ad-4a2a-8342-4190687cbf4a",
}

# What an identity-based storage connection needs per service it names. Blob needs Owner,
# not Contributor: the Functions host itself requires it on AzureWebJobsStorage.
ROLES_FOR_SERVICE = {
    "blob": BLOB_DATA_OWNER,
    "queue": QUEUE_DATA_CONTRIBUTOR,
    "table": TABLE_DATA_CONTRIBUTOR,
}
SERVICE_URI_SETTINGS = {
    "blobServiceUri": ("blob",),
    "queueServiceUri": ("queue",),
    "tableServiceUri": ("table",),
    "accountName": ("blob", "queue", "table"),
}

# App settings read by the Functions host, the Python worker or the Azure SDKs, not by the
# app's code, so they need no entry in operations/settings.py.
PLATFORM_SETTING_PREFIXES = (
    "AzureWebJobsStorage__",
    "APPLICATIONINSIGHTS_",
    "AZURE_CLIENT_ID",
    "WEBSITE_",
    "PYTHON_",
)
# Flex Consumption rejects these: the runtime comes from functionAppConfig.
FLEX_FORBIDDEN_SETTINGS = ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION")


@pytest.fixture(scope="module")
def infra(repo_root: Path) -> InfraTemplates:
    """Every .bicep file under infra/, parsed."""
    return load_infra(repo_root / "infra")


@pytest.fixture(scope="module")
def app_settings(infra: InfraTemplates) -> Mapping[str, Any]:
    """The Function App's app settings as Bicep sets them (name -> expression), default backend.

    tests/infra/test_durable_backend.py checks what the Durable Task Scheduler backend adds.
    """
    return app_settings_for_backend(infra.module(FUNCTION_APP), "azureStorage")


def _is_set(name: str, app_settings: Mapping[str, Any]) -> bool:
    # The host reads NAME__key settings as one configuration section, so an identity-based
    # connection (AzureWebJobsStorage__blobServiceUri, ...) stands in for NAME itself.
    return name in app_settings or any(key.startswith(f"{name}__") for key in app_settings)


def _role_ids(assignment: Resource, variables: Mapping[str, Any]) -> set[str]:
    """The role GUIDs an assignment's roleDefinitionId can take, following variables and a
    `[for role in ...]` loop it draws the role from."""
    guids: set[str] = set()
    expression = assignment.properties["roleDefinitionId"]

    def collect(value: Any) -> None:
        if isinstance(value, str) and value in variables:
            collect(variables[value])
        elif isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
            guids.add(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(expression)
    if assignment.loop_item and mentions(expression, assignment.loop_item):
        collect(assignment.loop_source)
    return guids


def _module_symbol(template: BicepTemplate, relative_path: str) -> str:
    symbols = template.modules_using(relative_path)
    assert len(symbols) == 1, f"main.bicep should declare {relative_path} once, not {symbols}"
    return symbols[0]


def test_every_bicep_file_parses_and_main_reaches_every_module(infra: InfraTemplates) -> None:
    used = {infra.main.module_path(symbol) for symbol in infra.main.modules}
    declared = {path for path in infra.files if path != "main.bicep"}
    assert used <= declared, f"main.bicep uses missing modules: {sorted(used - declared)}"
    assert declared <= used, f"module files nothing uses: {sorted(declared - used)}"


def test_every_setting_without_a_default_is_set_in_azure(
    app_settings: Mapping[str, Any],
) -> None:
    missing = [
        f"{setting.name} ({setting.description})"
        for setting in SETTINGS
        if setting.default is None and not _is_set(setting.name, app_settings)
    ]
    assert not missing, (
        "operations/settings.py declares settings with no default that infra/"
        f"{FUNCTION_APP} does not set: {missing}. Set them in its appsettings, "
        "or give them a default."
    )
    blank = [
        setting.name
        for setting in SETTINGS
        if setting.default is None and app_settings.get(setting.name, "unset") in ("", None)
    ]
    assert not blank, f"{FUNCTION_APP} sets these to an empty literal: {blank}"


def test_every_app_setting_in_bicep_is_read_by_the_app_or_the_platform(
    app_settings: Mapping[str, Any],
) -> None:
    declared = {setting.name for setting in SETTINGS}
    unknown = [
        name
        for name in app_settings
        if name not in declared and not name.startswith(PLATFORM_SETTING_PREFIXES)
    ]
    assert not unknown, (
        f"{FUNCTION_APP} sets app settings nothing reads (a typo?): {unknown}. "
        "Declare them in operations/settings.py or remove them."
    )


def test_no_setting_holds_a_key_or_a_flex_forbidden_name(
    app_settings: Mapping[str, Any],
) -> None:
    assert not set(FLEX_FORBIDDEN_SETTINGS) & set(app_settings)
    # Host storage is identity-based: a plain AzureWebJobsStorage would be a connection string.
    assert "AzureWebJobsStorage" not in app_settings
    as_text = json.dumps(app_settings)
    for secret_marker in ("AccountKey=", "SharedAccessSignature=", "InstrumentationKey="):
        assert secret_marker not in as_text


def test_every_container_setting_names_a_container_bicep_creates(
    infra: InfraTemplates, app_settings: Mapping[str, Any]
) -> None:
    main = infra.main
    function_app = _module_symbol(main, FUNCTION_APP)
    created = main.module_argument(_module_symbol(main, STORAGE), "containerNames")
    assert main.module_argument(function_app, "deploymentContainerName") in created
    defaults = {setting.name: setting.default for setting in SETTINGS}
    container_settings = [name for name in defaults if name.endswith("_CONTAINER")]
    assert container_settings, "operations/settings.py declares no *_CONTAINER setting"
    for name in container_settings:
        assert name in app_settings, f"{FUNCTION_APP} does not set {name}"
        module_parameter = app_settings[name]
        passed = main.module_argument(function_app, module_parameter)
        assert passed in created, f"the container of {name} is not created"
        # Deploying without overrides uses the same container names as running locally.
        assert main.parameters[passed]["default"] == defaults[name], name


def test_host_storage_connection_uses_the_user_assigned_identity(
    infra: InfraTemplates, app_settings: Mapping[str, Any]
) -> None:
    module = infra.module(FUNCTION_APP)
    assert app_settings["AzureWebJobsStorage__credential"] == "managedidentity"
    identity_symbol, *rest = accessor_path(app_settings["AzureWebJobsStorage__clientId"]) or ("",)
    assert rest == ["properties", "clientId"]
    identity = module.resource_by_symbol(identity_symbol)
    assert identity.type == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert identity.body["name"] == "identityName"
    # DefaultAzureCredential in the app's code must pick the same identity.
    assert app_settings["AZURE_CLIENT_ID"] == app_settings["AzureWebJobsStorage__clientId"]

    site = module.resource("Microsoft.Web/sites")
    assert site.body["identity"]["type"] == "UserAssigned"
    assert list(site.body["identity"]["userAssignedIdentities"]) == [f"'${{{identity_symbol}.id}}'"]


def test_durable_task_hub_connection_names_blob_queue_and_table(
    app_settings: Mapping[str, Any],
) -> None:
    services = {
        service
        for key, names in SERVICE_URI_SETTINGS.items()
        if f"AzureWebJobsStorage__{key}" in app_settings
        for service in names
    }
    assert services == {"blob", "queue", "table"}, (
        "the Durable Functions Azure Storage provider uses blobs, queues and tables: "
        f"AzureWebJobsStorage__* only names {sorted(services)}"
    )


def test_app_identity_holds_the_data_roles_its_storage_connection_needs(
    infra: InfraTemplates, app_settings: Mapping[str, Any]
) -> None:
    # The connection's services decide the roles.
    needed = {
        ROLES_FOR_SERVICE[service]
        for key, names in SERVICE_URI_SETTINGS.items()
        if f"AzureWebJobsStorage__{key}" in app_settings
        for service in names
    }

    # The storage-access module grants them on the storage account to its principalId.
    access = infra.module(STORAGE_ACCESS)
    assignment = access.resource("Microsoft.Authorization/roleAssignments")
    granted = _role_ids(assignment, access.variables)
    assert needed <= granted, f"roles missing: {sorted(needed - granted)}"
    assert assignment.properties["principalId"] == "principalId"
    scope = access.resource_by_symbol(assignment.body["scope"])
    assert scope.type == "Microsoft.Storage/storageAccounts"
    assert scope.body["name"] == "storageAccountName"

    # main.bicep grants them, unconditionally, to the identity the app runs as, on the
    # storage account the app connects to, before the app starts.
    main = infra.main
    function_app = _module_symbol(main, FUNCTION_APP)
    identity = _module_symbol(main, IDENTITY)
    storage = _module_symbol(main, STORAGE)
    app_grants = [
        symbol
        for symbol in main.modules_using(STORAGE_ACCESS)
        if accessor_path(main.module_argument(symbol, "principalId"))
        == (identity, "outputs", "principalId")
    ]
    assert len(app_grants) == 1, "the app identity should get the storage roles exactly once"
    (grant,) = app_grants
    assert not main.module_is_conditional(grant)
    assert main.module_argument(grant, "principalType") == "ServicePrincipal"
    assert accessor_path(main.module_argument(grant, "storageAccountName")) == (
        storage,
        "outputs",
        "name",
    )
    assert accessor_path(main.module_argument(function_app, "identityName")) == (
        identity,
        "outputs",
        "name",
    )
    assert accessor_path(main.module_argument(function_app, "storageAccountName")) == (
        storage,
        "outputs",
        "name",
    )
    assert grant in (main.module_body(function_app).get("dependsOn") or [])


def test_app_identity_may_sign_result_links_clients_can_reach(infra: InfraTemplates) -> None:
    # The app signs result links with a user delegation key: the identity that
    # test_app_identity_holds_the_data_roles_its_storage_connection_needs checks must hold a
    # role with generateUserDelegationKey, at account scope (a container-scoped grant of the
    # action is not honoured).
    access = infra.module(STORAGE_ACCESS)
    assignment = access.resource("Microsoft.Authorization/roleAssignments")
    granted = _role_ids(assignment, access.variables)
    assert granted & USER_DELEGATION_KEY_ROLES, (
        "the app identity cannot request a user delegation key, so large results cannot be "
        "handed out as SAS links; grant Storage Blob Data Owner or Storage Blob Delegator"
    )
    scope = access.resource_by_symbol(assignment.body["scope"])
    assert scope.type == "Microsoft.Storage/storageAccounts"
    # Clients download from the blob endpoint itself.
    storage = infra.module(STORAGE).resource("Microsoft.Storage/storageAccounts")
    assert storage.properties["publicNetworkAccess"] == "Enabled"
    assert storage.properties["networkAcls"]["defaultAction"] == "Allow"


def test_app_identity_may_publish_telemetry_without_keys(
    infra: InfraTemplates, app_settings: Mapping[str, Any]
) -> None:
    monitoring = infra.module(MONITORING)
    insights = monitoring.resource("Microsoft.Insights/components")
    assert insights.properties["DisableLocalAuth"] is True
    workspace = monitoring.resource("Microsoft.OperationalInsights/workspaces")
    assert accessor_path(insights.properties["WorkspaceResourceId"]) == (workspace.symbol, "id")
    publisher = monitoring.resource("Microsoft.Authorization/roleAssignments")
    assert _role_ids(publisher, monitoring.variables) == {MONITORING_METRICS_PUBLISHER}
    assert publisher.body["scope"] == insights.symbol

    main = infra.main
    identity = _module_symbol(main, IDENTITY)
    assert accessor_path(
        main.module_argument(_module_symbol(main, MONITORING), "publisherPrincipalId")
    ) == (identity, "outputs", "principalId")
    assert app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identity.properties.clientId};Authorization=AAD"
    )
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in app_settings


def test_storage_account_is_secure_by_default(infra: InfraTemplates) -> None:
    storage = infra.module(STORAGE).resource("Microsoft.Storage/storageAccounts")
    properties = storage.properties
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True
    container = infra.module(STORAGE).resource(
        "Microsoft.Storage/storageAccounts/blobServices/containers"
    )
    assert container.properties["publicAccess"] == "None"


def test_function_app_is_flex_consumption_python_3_12_with_identity_deployment(
    infra: InfraTemplates,
) -> None:
    module = infra.module(FUNCTION_APP)
    plan = module.resource("Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan.properties["reserved"] is True
    site = module.resource("Microsoft.Web/sites")
    assert site.properties["httpsOnly"] is True
    config = site.properties["functionAppConfig"]
    # 3.12, the version current Functions templates use; tests/infra/test_package_python312.py
    # imports and indexes the package on a 3.12 interpreter.
    assert config["runtime"] == {"name": "python", "version": "pythonVersion"}
    assert module.parameters["pythonVersion"]["default"] == "3.12"
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    identity_symbol = accessor_path(storage["authentication"]["userAssignedIdentityResourceId"])
    assert identity_symbol is not None
    assert module.resource_by_symbol(identity_symbol[0]).body["name"] == "identityName"


def test_main_parameters_file_matches_main_bicep(infra: InfraTemplates, repo_root: Path) -> None:
    values = json.loads((repo_root / "infra" / "main.parameters.json").read_text())["parameters"]
    declared = infra.main.parameters
    assert set(values) <= set(declared), f"unknown parameters: {set(values) - set(declared)}"
    without_value = [
        name for name, param in declared.items() if "default" not in param and name not in values
    ]
    assert not without_value, f"main.bicep parameters azd cannot fill: {without_value}"


def test_azure_yaml_deploys_this_folder_to_the_tagged_function_app(
    infra: InfraTemplates, repo_root: Path
) -> None:
    project = yaml.safe_load((repo_root / "azure.yaml").read_text())
    assert project["infra"]["provider"] == "bicep"
    assert (repo_root / project["infra"]["path"] / f"{project['infra']['module']}.bicep").exists()
    (service_name, service), *others = project["services"].items()
    assert not others
    assert service["host"] == "function"
    assert service["language"] == "python"
    assert (repo_root / service["project"]).resolve() == repo_root.resolve()
    # azd finds the app by its azd-service-name tag.
    main = infra.main
    assert main.module_argument(_module_symbol(main, FUNCTION_APP), "serviceName") == service_name


def test_app_settings_the_bindings_name_are_set_in_azure(
    deployable_package: DeployablePackage, repo_root: Path, app_settings: Mapping[str, Any]
) -> None:
    # The host, not the app's code, resolves %NAME% in binding properties and the
    # connection names of bindings; a default in operations/settings.py does not reach it.
    indexed = run_probe(deployable_package.python, deployable_package.root, "index")
    referenced: dict[str, str] = {}
    for function in indexed["functions"]:
        for binding in function["bindings"]:
            for key, value in binding.items():
                if not isinstance(value, str):
                    continue
                for name in re.findall(r"%([^%]+)%", value):
                    referenced[name] = f"{function['name']}.{binding['name']}.{key}"
                if key.lower() in {"connection", "connectionname"} and value:
                    referenced[value] = f"{function['name']}.{binding['name']}.{key}"
    missing = {name: where for name, where in referenced.items() if not _is_set(name, app_settings)}
    assert not missing, f"bindings read app settings that {FUNCTION_APP} does not set: {missing}"
