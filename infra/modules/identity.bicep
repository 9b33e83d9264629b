// The user-assigned managed identity the Function App runs as. User-assigned rather than
// system-assigned so its role assignments exist before the app starts (no first-start race
// where the host cannot yet read its deployment package) and survive re-creating the app.

@description('Name of the managed identity.')
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output name string = identity.name
output resourceId string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
