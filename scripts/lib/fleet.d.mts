export type AppHostName = 'app1' | 'app2' | 'app3'
export function fleetEnv(): Record<string, string>
export const APP_HOSTS: readonly AppHostName[]
export function addr(h: AppHostName | 'lb'): string
export function privateAddr(h: AppHostName | 'lb'): string
export function hostDocker(h: AppHostName | 'lb', ...args: string[]): string
export function ctl(...args: string[]): string
export function replicasOn(h: AppHostName, app: string): string[]
export function image(tag: string): string
export function fleetInputs(app: string, listenPort: number, over?: Record<string, string>): Record<string, string>
export function resetFleetApp(app: string): void
