"""One model of the nodes Karpenter NodePools launch and of whether a pod can land on them.

- `labels`: the labels of a node of an instance type (aws/karpenter-provider-aws computeRequirements) and how
  node selector expressions hold on them.
- `pools`: NodePool parsing (requirements, labels, taints, capacity types, instance types, GPU pools, ...).
- `resources`: capacity as Karpenter counts it against limits, and allocatable.
- `shapes`: the kinds of node (one per instance type) a pool can launch.
- `placement`: a pod's tolerations, node selection and requests against a shape, with the reason it fails.
- `budgets`: spec.disruption.budgets — robfig cron in UTC, activity, allowed disruptions (fail closed).
- `model`: the per-run memoized entry points rules use.
"""
