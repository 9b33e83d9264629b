// Data-plane roles on the storage account for one principal. Management roles such as Owner
// do not grant data access, so identity-based AzureWebJobsStorage needs these explicitly:
// - Storage Blob Data Owner: the Functions host (keys, timer and singleton leases), the Flex
//   Consumption deployment package, the Durable task hub's lease and large-message blobs, and
//   the operation results. Owner rather than Contributor because the host needs it.
//   It also holds Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action,
//   which the app uses to sign the short-lived read-only SAS URLs that GET .../result redirects
//   large results to (a user delegation SAS: the account allows no shared keys). That action
//   counts only when granted at account scope or above, as here, so no Storage Blob Delegator
//   assignment is needed.
// - Storage Queue Data Contributor: the Durable control and work-item queues.
// - Storage Table Data Contributor: the Durable History and Instances tables, and the host's
//   diagnostic events.

@description('Name of the storage account the roles are granted on.')
param storageAccountName string

@description('Principal (object) id that gets the roles.')
param principalId string

@description('Kind of principal: ServicePrincipal for a managed identity, User for a developer.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param principalType string = 'ServicePrincipal'

// Built-in role definition ids.
var storageRoles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in items(storageRoles): {
    name: guid(storage.id, principalId, role.value)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.value)
      principalId: principalId
      principalType: principalType
    }
  }
]
