-- Argo CD health check for stepflow.dev/Workflow.
-- Register it as resource.customizations.health.stepflow.dev_Workflow (see argocd-cm-patch.yaml).
--   Succeeded -> Healthy, Failed -> Degraded, Suspended -> Suspended, anything else -> Progressing;
--   Progressing too while the operator has not yet seen the latest spec
--   (status.observedGeneration < metadata.generation).
local hs = {}

local function summary(status)
  local text = status.phase
  if status.progress ~= nil and status.progress ~= "" then
    text = text .. " (" .. status.progress .. ")"
  end
  if status.message ~= nil and status.message ~= "" then
    text = text .. ": " .. status.message
  end
  return text
end

local status = obj.status
if status == nil or status.phase == nil or status.phase == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the stepflow operator to start the workflow"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the stepflow operator to pick up generation " .. tostring(generation)
  return hs
end

if status.phase == "Succeeded" then
  hs.status = "Healthy"
elseif status.phase == "Failed" then
  hs.status = "Degraded"
elseif status.phase == "Suspended" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
hs.message = summary(status)
return hs
